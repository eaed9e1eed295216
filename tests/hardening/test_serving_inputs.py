"""The serving layer's input files are read as every other input is (topology.datafile.read_text_file):
a request trace or a serving run record of the wrong kind is one line naming the field, never a wait, a
traceback or memory exhausted; a saved plan served on a cluster that lacks its GPUs is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving.replay import main as replay_main
from serving.traces import read_trace
from topology.errors import LayerwiseError

DATA = Path(__file__).resolve().parents[1] / "data" / "serving"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "binary", "long-name", "huge-int", "deep",
                                  "huge-csv-field"])
def test_a_trace_of_the_wrong_kind_is_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "trace.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00binary")
    elif kind == "long-name":
        path = tmp_path / ("t" * 300 + ".csv")
    elif kind == "huge-int":
        path.write_text('{"arrival_s": 0, "prompt_tokens": ' + "9" * 5000 + ', "output_tokens": 2}\n')
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    else:
        path = tmp_path / "trace.csv"
        path.write_text("arrival_s,prompt_tokens,output_tokens\n0,4," + "x" * 200_000 + "\n")
    with pytest.raises(LayerwiseError) as caught:
        read_trace(path)
    assert caught.value.field == "trace.path"
    assert "\n" not in str(caught.value)


def test_a_trace_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    marked = tmp_path / "simple.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + (DATA / "simple.csv").read_bytes())
    assert len(read_trace(marked)) == len(read_trace(DATA / "simple.csv")) > 0


def test_replay_of_a_record_that_is_not_a_regular_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    assert replay_main([str(fifo)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("serving.replay: error: record: ") and "not a regular file" in err
    assert "\n" not in err
    assert replay_main(["/dev/zero"]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_a_saved_plan_naming_gpus_the_cluster_lacks_is_not_served(tmp_path: Path) -> None:
    import argparse
    import json

    from executor.serving.worker import resolve_serving
    from serving.setup import load_serving_setup
    from topology.experiment import build_plan

    setup = load_serving_setup("llama3-8b-h100-serve")
    raw = build_plan(setup.experiment, "tp1").to_dict()
    raw["stages"][0]["devices"] = ["gpu7"]  # the experiment's cluster is two H100s: gpu0 and gpu1
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(raw))
    args = argparse.Namespace(experiment="llama3-8b-h100-serve", overrides=[], plan=str(path))
    with pytest.raises(LayerwiseError, match=r"^--plan: .*gpu7"):
        resolve_serving(args)
    raw["stages"][0]["devices"] = ["gpu1"]
    path.write_text(json.dumps(raw))
    assert resolve_serving(args)[2].devices == ("gpu1",)
