"""The trace readers on the shipped synthetic samples (tests/data/serving, written by
make_samples.py there), a workload replaying them, and every malformed trace refused with the
column named."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from serving.sources import open_loop_requests
from serving.traces import read_trace
from serving.workload import serving_workload_from_dict
from topology.errors import LayerwiseError

DATA = Path(__file__).resolve().parents[1] / "data" / "serving"


@pytest.mark.parametrize("name, trace_format, first_rows", [
    ("simple.csv", "simple", [(0.5, 178, 191), (0.5771, 760, 116)]),
    ("simple.jsonl", "simple", [(0.0, 178, 191), (0.0771, 760, 116)]),
    ("azure_2023.csv", "azure", [(0.0, 581, 43), (0.0547, 1332, 145), (0.1831, 269, 83)]),
    ("azure_2024.csv", "azure", [(0.0, 1137, 49), (0.0974, 69, 442)]),
    ("burstgpt.csv", "burstgpt", [(5.0, 351, 65), (5.108, 565, 260)]),
    ("burstgpt_3.csv", "burstgpt", [(0.0, 796, 220), (0.188, 274, 25)]),
])
def test_samples_are_read_and_their_format_detected(name: str, trace_format: str,
                                                    first_rows: list[tuple[float, int, int]]) -> None:
    trace = read_trace(DATA / name)
    assert trace.format == trace_format and len(trace) == 36
    for index, (time_s, prompt, output) in enumerate(first_rows):
        assert trace.arrival_s[index] == pytest.approx(time_s, abs=1e-9)
        assert (trace.prompt_tokens[index], trace.output_tokens[index]) == (prompt, output)
    assert np.all(np.diff(trace.arrival_s) >= 0) and trace.prompt_tokens.min() >= 1
    assert read_trace(DATA / name, trace_format).format == trace_format
    with pytest.raises(ValueError):
        trace.arrival_s[0] = 1.0  # read-only


def test_azure_2024_times_cross_midnight_and_mix_fraction_styles() -> None:
    trace = read_trace(DATA / "azure_2024.csv")
    # row 6 is "2024-05-11 00:00:00+00:00", two seconds after "2024-05-10 23:59:58+00:00"
    assert trace.arrival_s[5] == pytest.approx(2.0, abs=1e-12)
    assert trace.arrival_s[6] == pytest.approx(2.1086, abs=1e-9)


def test_a_workload_replays_a_trace_and_takes_lengths_from_it() -> None:
    raw = {"num_requests": 10, "arrivals": {"kind": "trace", "speedup": 2.0},
           "prompt_tokens": {"kind": "trace"}, "output_tokens": {"kind": "trace"},
           "trace": {"path": "azure_2023.csv", "format": "azure"}}
    specs = open_loop_requests(serving_workload_from_dict(raw, base_dir=DATA))
    trace = read_trace(DATA / "azure_2023.csv")
    assert len(specs) == 10
    assert [s.arrival_s for s in specs] == pytest.approx(list(trace.arrival_s[:10] / 2.0))
    assert [s.prompt_tokens for s in specs] == list(trace.prompt_tokens[:10])
    whole = dict(raw)
    del whole["num_requests"]
    assert len(open_loop_requests(serving_workload_from_dict(whole, base_dir=DATA))) == 36
    windowed = {**whole, "duration_s": 1.0}
    assert all(s.arrival_s <= 1.0 for s in open_loop_requests(serving_workload_from_dict(windowed, base_dir=DATA)))


def test_poisson_arrivals_with_trace_lengths() -> None:
    raw = {"num_requests": 36, "arrivals": {"kind": "poisson", "rate_per_s": 2.0},
           "prompt_tokens": {"kind": "trace"}, "output_tokens": {"kind": "fixed", "tokens": 4},
           "trace": {"path": str(DATA / "burstgpt.csv")}}
    specs = open_loop_requests(serving_workload_from_dict(raw))
    assert [s.prompt_tokens for s in specs] == list(read_trace(DATA / "burstgpt.csv").prompt_tokens)
    too_many = {**raw, "num_requests": None, "duration_s": 1000.0}
    with pytest.raises(LayerwiseError) as caught:
        open_loop_requests(serving_workload_from_dict(too_many))
    assert caught.value.field == "workload.prompt_tokens" and "too few rows" in caught.value.message


BAD_TRACES = [
    ("unsorted", "arrival_s,prompt_tokens,output_tokens\n1.0,5,5\n0.5,5,5\n", "trace.arrival_s", "row 2"),
    ("negative", "arrival_s,prompt_tokens,output_tokens\n-1.0,5,5\n", "trace.arrival_s", ">= 0"),
    ("nan time", "arrival_s,prompt_tokens,output_tokens\nnan,5,5\n", "trace.arrival_s", ">= 0"),
    ("text time", "arrival_s,prompt_tokens,output_tokens\nsoon,5,5\n", "trace.arrival_s", "not a number"),
    ("missing column", "arrival_s,prompt_tokens\n0.0,5\n", "trace.output_tokens", "missing column"),
    ("no known column", "time,prompt\n0.0,5\n", "trace.format", "match no trace format"),
    ("fractional tokens", "arrival_s,prompt_tokens,output_tokens\n0.0,5.5,5\n", "trace.prompt_tokens",
     "whole number"),
    ("zero tokens", "arrival_s,prompt_tokens,output_tokens\n0.0,5,0\n", "trace.output_tokens", ">= 1"),
    ("negative tokens", "arrival_s,prompt_tokens,output_tokens\n0.0,-5,3\n", "trace.prompt_tokens", "whole number"),
    ("empty cell", "arrival_s,prompt_tokens,output_tokens\n0.0,,3\n", "trace.prompt_tokens", "whole number"),
    ("short row", "arrival_s,prompt_tokens,output_tokens\n0.0,4\n", "trace.output_tokens", "None"),
    ("header only", "arrival_s,prompt_tokens,output_tokens\n", "trace.path", "no rows"),
    ("azure stamp", "TIMESTAMP,ContextTokens,GeneratedTokens\n16/11/2023 18:17,5,5\n", "trace.TIMESTAMP",
     "not a timestamp"),
    ("azure date", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-02-30 18:17:03,5,5\n", "trace.TIMESTAMP",
     "not a date"),
    ("azure unsorted", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.5,5,5\n"
     "2023-11-16 18:17:03.4999999,5,5\n", "trace.TIMESTAMP", "before the previous row"),
    ("burstgpt failure", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
     "5,ChatGPT,10,0,10,Conversation log\n", "trace.Response tokens", ">= 1"),
]


@pytest.mark.parametrize("text, field, words", [case[1:] for case in BAD_TRACES], ids=[c[0] for c in BAD_TRACES])
def test_bad_traces_are_refused_naming_the_column(tmp_path: Path, text: str, field: str, words: str) -> None:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(LayerwiseError) as caught:
        read_trace(path)
    assert caught.value.field == field and words in caught.value.message and "\n" not in str(caught.value)


def test_format_given_but_columns_missing(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    shutil.copy(DATA / "simple.csv", path)
    with pytest.raises(LayerwiseError) as caught:
        read_trace(path, "azure")
    assert caught.value.field == "trace.TIMESTAMP" and "missing column" in caught.value.message


@pytest.mark.parametrize("text, field", [
    ('{"arrival_s": 0, "prompt_tokens": 4, "output_tokens": 2}\nnot json\n', "trace.path"),
    ('[1, 2, 3]\n', "trace.path"),
    ('{"arrival_s": 0, "prompt_tokens": 4.0, "output_tokens": 2}\n', "trace.prompt_tokens"),
    ('{"arrival_s": 0, "prompt_tokens": true, "output_tokens": 2}\n', "trace.prompt_tokens"),
    ('{"arrival_s": "0", "prompt_tokens": 4, "output_tokens": 2}\n'
     '{"arrival_s": -0.5, "prompt_tokens": 4, "output_tokens": 2}\n', "trace.arrival_s"),
])
def test_bad_jsonl_traces(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text(text)
    with pytest.raises(LayerwiseError) as caught:
        read_trace(path)
    assert caught.value.field == field


def test_a_missing_file_and_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(LayerwiseError, match=r"^trace.path: no such file"):
        read_trace(tmp_path / "absent.csv")
    with pytest.raises(LayerwiseError, match=r"^trace.format: must be one of"):
        read_trace(DATA / "simple.csv", "sharegpt")
