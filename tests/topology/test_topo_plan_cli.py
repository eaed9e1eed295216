"""``layerwise plan``: the seed's two plans, ad-hoc plans, --out, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from layerwise.cli import main
from topology.plan import load_plan_json, plan_from_dict

SEED_OVERFLOW = "over by 505.4 MB"  # 536,887,296 B of weights - 31,457,280 B usable L2


def test_plan_without_arguments_shows_both_seed_plans(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "268,443,648 parameters" in out and "536.9 MB of weights per layer" in out
    assert "plan 'baseline': tp-pp TP8xPP2 mb=8" in out
    assert "plan 'layer-wise': layer-wise TP1xPP16 mb=1" in out
    assert "no layer fits C=31457280 B: one layer per device, as the seed ran it" in out
    assert "layer 0 does not fit: weights 536887296 B exceed C=31457280 B by 505430016 B" in out
    lines = out.splitlines()
    layer_rows = [line for line in lines if line.split()[:2] in ([str(i), f"{i}-{i}"] for i in range(16))]
    assert len(layer_rows) == 16 and all(SEED_OVERFLOW in row for row in layer_rows)
    baseline_rows = [line for line in lines if line.startswith(("0      0-7", "1      8-15"))]
    assert len(baseline_rows) == 2 and all("over by" in row for row in baseline_rows)


def test_ad_hoc_tp_pp(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "tp8pp2.json"
    assert main(["plan", "--model", "seed-dense-16", "--cluster", "seed-16xh100", "--partitioner", "tp-pp",
                 "--tp", "8", "--pp", "2", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "tp-pp TP8xPP2 mb=2" in out and "gpu0..gpu7" in out and "gpu8..gpu15" in out
    plan = load_plan_json(out_file)
    assert [(s.layer_start, s.layer_stop, s.tp_degree) for s in plan.stages] == [(0, 8, 8), (8, 16, 8)]
    assert plan_from_dict(json.loads(out_file.read_text())) == plan


def test_ad_hoc_cache_fit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["plan", "--model", "seed-dense-16", "--cluster", "seed-16xh100", "--partitioner", "cache-fit",
                 "--capacity", "l2", "--out", str(tmp_path / "lw.json")]) == 0
    out = capsys.readouterr().out
    assert "layer-wise TP1xPP16" in out and SEED_OVERFLOW in out
    assert "cache-fit capacity C = 31.5 MB counting weights" in out
    assert load_plan_json(tmp_path / "lw.json").num_stages == 16


def test_out_folder_for_several_plans(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["plan", "tiny-cpu", "--out", str(tmp_path / "plans")]) == 0
    written = sorted(p.name for p in (tmp_path / "plans").iterdir())
    assert written == ["layer-wise.plan.json", "pp2.plan.json", "tp2.plan.json", "tp2pp2.plan.json"]
    assert load_plan_json(tmp_path / "plans" / "pp2.plan.json").num_stages == 2


def test_plan_filter_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "seed-16xh100", "--plan", "baseline", "--batch", "64", "--context", "2048",
                 "--set", "plans.baseline.microbatches=4"]) == 0
    out = capsys.readouterr().out
    assert "decode batch 64, context 2048" in out and "mb=4" in out and "layer-wise" not in out


@pytest.mark.parametrize(("argv", "message"), [
    (["plan", "--model", "seed-dense-16", "--cluster", "seed-16xh100", "--partitioner", "tp-pp", "--tp", "3"],
     "layerwise plan: error: tp: tp=3 does not divide num_heads=32"),
    (["plan", "--model", "seed-dense-16", "--partitioner", "tp-pp"],
     "layerwise plan: error: --cluster: missing (ad-hoc plans need --model, --cluster and --partitioner)"),
    (["plan", "seed-16xh100", "--model", "seed-dense-16"], "layerwise plan: error: experiment: give an"),
    (["plan", "--model", "gpt-9", "--cluster", "h100x1", "--partitioner", "optimal"],
     "layerwise plan: error: model: unknown preset 'gpt-9'"),
    (["plan", "--model", "seed-dense-16", "--cluster", "seed-16xh100", "--partitioner", "cache-fit",
      "--capacity", "lots"], "layerwise plan: error: capacity: must be one of"),
    (["plan", "no-such.yaml"], "layerwise plan: error: experiment: no such file or shipped experiment"),
    (["plan", "tiny-cpu", "--set", "workload.batch_size=7"],
     "layerwise plan: error: plan.microbatches: microbatches=2 does not divide batch_size=7"),
    (["plan", "tiny-cpu", "--plan", "nope"], "layerwise plan: error: plan: no plan 'nope'"),
])
def test_bad_arguments_give_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["plan", "--bogus"], ["plan", "--tp", "eight"],
                                  ["plan", "--partitioner", "zigzag"]])
def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("layerwise plan: error: ") and "Traceback" not in err


def test_closed_pipe_is_quiet() -> None:
    """`layerwise plan | head -1`: no BrokenPipeError traceback, exit 0."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from layerwise.cli import main; sys.exit(main())",
                             "plan", "tiny-cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


def test_a_bad_optimal_argument_is_one_line_named_as_the_file_names_it(tmp_path, capsys) -> None:
    """Found by the input fuzz: the search's progress line came before the error, and the error
    named the command-line flag (--microbatches) instead of the file's field."""
    from layerwise.cli import main

    experiment = tmp_path / "e.yaml"
    experiment.write_text(
        "name: e\nmodel: tiny-test\n"
        "cluster: {name: cpu4, nodes: 1, gpus_per_node: 4, gpu: h100-sxm, intra_node_link: nvlink4}\n"
        "workload: {phase: decode, batch_size: 8, context_len: 16, warmup_iters: 1, measured_iters: 3}\n"
        "plans: {best: {partitioner: optimal, microbatches: 16}}\n", encoding="utf-8")
    assert main(["plan", str(experiment)]) == 2
    err = capsys.readouterr().err
    assert err == "layerwise plan: error: plans.best.microbatches: 16 does not divide batch_size=8\n"
    text = experiment.read_text().replace("microbatches: 16", "microbatches: 2")
    experiment.write_text(text + "profile: gone.json\n")
    assert main(["plan", str(experiment)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("layerwise plan: error: profile: ")
