"""Issue 25's "Why" list, one case per example: each ended in a traceback, a hang, a partial output or was
accepted as nonsense on the main of the time; each must now end in a clean result or one clean line."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from layerwise.cli import main
from topology.datafile import data_dir

PROFILE = json.loads(data_dir("profiles").joinpath("h100-sxm.json").read_text(encoding="utf-8"))


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code) if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def assert_one_line(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def profile_with(tmp_path: Path, path: tuple[str, ...], value: Any) -> str:
    raw = copy.deepcopy(PROFILE)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    file = tmp_path / "profile.json"
    file.write_text(json.dumps(raw))  # NaN and Infinity as Python writes them
    return str(file)


COLLECTIVE = {"op": "allreduce", "group_size": 2, "latency_s": 1e-5, "bw_bytes_per_s": 1e11}
ATTENTION = {"batch": 1, "heads": 8, "kv_heads": 8, "head_dim": 64, "new_tokens": 1, "context_len": 128,
             "time_s": 1e-5}
GEMM = {"m": 1, "n": 64, "k": 64, "time_s": 1e-6}


@pytest.mark.parametrize(("path", "value", "field"), [
    (("params", "hbm_read_bw_bytes_per_s"), 0, "params.hbm_read_bw_bytes_per_s"),  # ZeroDivisionError
    (("params", "hbm_read_bw_bytes_per_s"), float("nan"), "params.hbm_read_bw_bytes_per_s"),  # StopIteration
    (("params", "hbm_read_bw_bytes_per_s"), "fast", "params.hbm_read_bw_bytes_per_s"),  # ValueError
    (("params", "collectives"), [{**COLLECTIVE, "latency_s": -1e-5}], "collectives[0].latency_s"),  # SimPy
    (("params", "collectives"), [{**COLLECTIVE, "bw_bytes_per_s": -1e11}], "collectives[0].bw_bytes_per_s"),
    (("params", "attention_points"), [{**ATTENTION, "time_s": -1e-5}], "attention_points[0].time_s"),
    (("params", "gemm_points"), [{**GEMM, "time_s": 0}], "gemm_points[0].time_s"),
    (("params", "hbm_bw_bytes_per_s"), float("inf"), "params.hbm_bw_bytes_per_s"),
    (("params", "l2_usable_bytes"), float("nan"), "params.l2_usable_bytes"),
    (("params", "matmul_flops_per_s"), 0, "params.matmul_flops_per_s"),
    # found by the 10,000-case fuzz at main: a launch overhead of 1e308 s gave NaN tokens/s (or a
    # ZeroDivisionError), a band's host count of -inf an OverflowError
    (("params", "launch_overhead_graph_s"), 1e308, "params.launch_overhead_graph_s"),
    (("params", "sim_params"), {"p2p_latency_s": 1e300}, "p2p_latency_s is 1e+300"),
    (("validation",), [{"regime": "prefill", "gpu": "x", "runs": 3, "configurations": 3, "mape": 0.1,
                        "worst": 0.2, "components": ["kernels"], "hosts": float("-inf")}], "validation[0].hosts"),
])
def test_a_profile_value_out_of_range_is_one_line(tmp_path: Path, path: tuple[str, ...], value: Any,
                                                  field: str) -> None:
    profile = profile_with(tmp_path, path, value)
    code, err = run(["simulate", "small-h100x1", "--profile", profile, "--json", str(tmp_path / "out.json")])
    assert_one_line(code, err, field, profile)
    assert not (tmp_path / "out.json").exists()


@pytest.fixture
def saved_plan(tmp_path: Path) -> dict[str, Any]:
    code, err = run(["plan", "tiny-cpu", "--plan", "pp2", "--out", str(tmp_path / "pp2.json")])
    assert code == 0, err
    return dict(json.loads((tmp_path / "pp2.json").read_text()))


def experiment_with_plan(tmp_path: Path, plan: dict[str, Any], cluster: str = "") -> str:
    (tmp_path / "edited.json").write_text(json.dumps(plan))
    text = (data_dir("experiments").joinpath("tiny-cpu.yaml").read_text(encoding="utf-8"))
    text = text.split("plans:")[0] + "plans:\n  edited: {file: edited.json}\n"
    if cluster:
        text = text.replace("cluster: {name: cpu4, nodes: 1, gpus_per_node: 4, gpu: h100-sxm",
                            f"cluster: {{name: cpu4, nodes: 1, gpus_per_node: 4, gpu: {cluster}")
    (tmp_path / "exp.yaml").write_text(text)
    return str(tmp_path / "exp.yaml")


@pytest.mark.parametrize(("edit", "field"), [
    (lambda p: p["stages"][0]["footprint"].update(weights_bytes=-5), "stages[0].footprint.weights_bytes"),
    (lambda p: p.update(microbatches=True), "microbatches"),
    (lambda p: p["stages"][0].update(layer_stop=1.5), "stages[0].layer_stop"),
])
def test_an_edited_plan_file_is_checked_as_the_plan_is(tmp_path: Path, saved_plan: dict[str, Any], edit: Any,
                                                       field: str) -> None:
    edit(saved_plan)
    assert_one_line(*run(["simulate", experiment_with_plan(tmp_path, saved_plan), "--analytic"]), field)


def test_a_plan_for_an_h200_does_not_run_on_an_80gb_h100(tmp_path: Path, saved_plan: dict[str, Any]) -> None:
    saved_plan["device_hbm_capacity_bytes"] = 141 * 10**9
    saved_plan["stages"][0]["footprint"]["kv_cache_bytes"] = 100 * 10**9  # fits 141 GB, not 80 GB
    code, err = run(["simulate", experiment_with_plan(tmp_path, saved_plan), "--analytic"])
    assert_one_line(code, err, "HBM")


def test_a_plan_naming_gpus_the_cluster_lacks_is_refused(tmp_path: Path, saved_plan: dict[str, Any]) -> None:
    saved_plan["stages"][0]["devices"] = ["gpu7"]
    saved_plan["stages"][1]["devices"] = ["gpu8"]
    code, err = run(["simulate", experiment_with_plan(tmp_path, saved_plan), "--analytic"])
    assert_one_line(code, err, "gpu7", "does not have")


def results_folder(tmp_path: Path, edit: Any) -> str:
    source = Path(__file__).parents[1] / "data" / "validate" / "hardware"
    folder = tmp_path / "runs"
    folder.mkdir()
    for file in sorted(source.glob("*.json")):
        raw = json.loads(file.read_text())
        if file == sorted(source.glob("*.json"))[0]:
            edit(raw)
        (folder / file.name).write_text(json.dumps(raw))
    return str(folder)


@pytest.mark.parametrize(("edit", "words"), [
    (lambda r: r["metrics"].update(step_time_s=0), ("metrics.step_time_s",)),  # a traceback
    (lambda r: r["metrics"].update(step_time_s=-0.01), ("metrics.step_time_s",)),  # scored as a 121% error
    (lambda r: r.update(schema_version=7), ("schema_version",)),  # dropped without a word
    (lambda r: r["plan"]["model"].update(name="other", hidden_size=128), ("plan.model", "other")),  # compared
])
def test_a_bad_result_file_in_validate_is_one_line(tmp_path: Path, edit: Any, words: tuple[str, ...]) -> None:
    folder = results_folder(tmp_path, edit)
    code, err = run(["validate", folder, "--datasheet",
                     "--out", str(tmp_path / "report")])
    assert_one_line(code, err, *words)
    assert not (tmp_path / "report").exists()


def test_files_of_the_wrong_kind(tmp_path: Path) -> None:
    binary = tmp_path / "plan.json"
    binary.write_bytes(os.urandom(64) + b"\xff")
    assert_one_line(*run(["run", "tiny-cpu", "--plan", str(binary)]), "not UTF-8")
    fifo = tmp_path / "profile.json"
    os.mkfifo(fifo)
    assert_one_line(*run(["simulate", "small-h100x1", "--profile", str(fifo)]), "not a regular file")  # waited
    assert_one_line(*run(["simulate", "small-h100x1", "--profile", "/dev/zero"]), "not a regular file")  # OOM
    bomb = tmp_path / "bomb.yaml"
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level, name in enumerate("bcdefgh"):
        previous = "abcdefgh"[level]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    bomb.write_text("\n".join(levels) + "\n")
    assert_one_line(*run(["simulate", str(bomb)]), "aliases")  # expanded to gigabytes
    assert_one_line(*run(["simulate", str(tmp_path / ("x" * 300 + ".yaml"))]), "too long")  # NAME_MAX
    assert_one_line(*run(["simulate", "x/" * 2100 + "e.yaml"]), "too long")  # PATH_MAX
    assert_one_line(*run(["simulate", "small-h100x1", "--json", "y" * 300 + ".json"]), "--json")


def test_numbers_at_the_edge(tmp_path: Path) -> None:
    assert_one_line(*run(["simulate", "tiny-cpu", "--analytic", "--plan", "layer-wise", "--set",
                          "plans.layer-wise.capacity=.inf"]), "capacity")  # OverflowError
    assert_one_line(*run(["plan", "--model", "tiny-test", "--cluster", "h100x4", "--partitioner", "cache-fit",
                          "--capacity", "1e400"]), "capacity")  # OverflowError
    assert_one_line(*run(["run", "tiny-cpu", "--nnodes", "0"]), "--nnodes")  # ZeroDivisionError
    assert_one_line(*run(["run", "tiny-cpu", "--timeout-s", "-1"]), "--timeout-s")  # reached torchrun


def test_a_billion_microbatches_are_refused_before_any_allocation(tmp_path: Path, saved_plan: dict[str, Any]) -> None:
    saved_plan["microbatches"] = 10**9
    exp = experiment_with_plan(tmp_path, saved_plan)
    Path(exp).write_text(Path(exp).read_text().replace("batch_size: 8", "batch_size: 1000000000"))
    assert_one_line(*run(["simulate", exp]), "stage passes", "--max-passes")


def test_min_max_bytes_on_16384_layers_is_refused_with_the_way_out(tmp_path: Path) -> None:
    exp = tmp_path / "deep.yaml"
    exp.write_text("model: {num_layers: 16384, hidden_size: 1024, num_heads: 8, mlp_hidden_size: 4096}\n"
                   "cluster: h100x64\nworkload: {phase: decode, batch_size: 8, context_len: 128}\n"
                   "plans: {m: {partitioner: min-max-bytes}}\n")
    assert_one_line(*run(["plan", str(exp)]), "min-max-bytes would take", "layerwise search")


def test_silent_cli_mistakes(tmp_path: Path) -> None:
    assert_one_line(*run(["simulate", "tiny-cpu", "--analytic", "--json", ""]), "--json", "empty")
    assert_one_line(*run(["sweep", "tiny-cpu", "--analytic", "--grid", "workload.batch_size=4,8",
                          "--grid", "workload.batch_size=16"]), "twice")
    assert_one_line(*run(["calibrate", "--device", "cpu", "--only", "hbm", "--skip", "hbm",
                          "--out", str(tmp_path / "p.json")]), "no section")
    assert not (tmp_path / "p.json").exists()


def test_model_heads_must_divide_hidden_unless_head_dim_is_given() -> None:
    model = "model={name: m, num_layers: 2, hidden_size: 100, num_heads: 3, mlp_hidden_size: 64}"
    assert_one_line(*run(["simulate", "tiny-cpu", "--analytic", "--set", model]), "head_dim")
    with_dim = model.replace("num_heads: 3", "num_heads: 3, num_kv_heads: 3, head_dim: 32")
    code, err = run(["plan", "tiny-cpu", "--plan", "tp2", "--set", with_dim.replace("num_heads: 3", "num_heads: 4")
                     .replace("num_kv_heads: 3", "num_kv_heads: 4")])
    assert code == 0, err


def test_search_and_main_job_json_keep_wall_times_in_the_metadata_block(tmp_path: Path) -> None:
    outputs = []
    for attempt in range(2):
        out = tmp_path / f"s{attempt}.json"
        assert run(["search", "small-h100x1", "--no-plot", "--json", str(out)])[0] == 0
        raw = json.loads(out.read_text())
        assert "wall_s" in raw.pop("metadata")
        outputs.append(json.dumps(raw, sort_keys=True))
        assert "wall_s" not in outputs[-1] and "NaN" not in out.read_text()
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(("edit", "words"), [
    (lambda r: r["metrics"].update(hardware=8), ("metrics.hardware",)),  # was AttributeError: 'int' ... 'items'
    (lambda r: r["metrics"]["stages"][0].update(compute_s=-3), ("metrics.stages[0].compute_s",)),
    (lambda r: r["metrics"].update(stages=3), ("metrics.stages",)),
])
def test_a_result_whose_details_are_not_what_they_say_is_one_line(tmp_path: Path, edit: Any,
                                                                   words: tuple[str, ...]) -> None:
    folder = results_folder(tmp_path, edit)
    assert_one_line(*run(["validate", folder, "--out", str(tmp_path / "report")]), *words)
    assert not (tmp_path / "report").exists()
