"""Our predictions beside NVIDIA AIConfigurator's, on the project's own measured one-GPU shapes.

    python benchmarks/compare_aiconfigurator.py [--aic-python PATH] [--backends sglang,trtllm,vllm]
        [--results results/hardware/h200x1-families] [--validation results/report-h200x1-families/validation.json]
        [--out benchmarks/compare_aiconfigurator.md] [--json results/compare-aiconfigurator-h200x1.json]

For every measured run of the shape study (1 x H200), three predictions of its step time:

* **ours, held out**: ``layerwise validate --folds family`` (the report's ``validation.json``): the
  fit and the kernels of the run's own family were never seen;
* **ours, kernels only**: computed here, with the calibration profile plus the shape study's kernels
  of every *other* family, nothing fitted to step times (the same leave-one-family-out, no fit);
* **AIConfigurator 0.12.0**, per backend database (its own measured per-op tables for the H200,
  never fitted to our runs), run here through ``benchmarks/aiconfigurator/predict.py`` in its own
  virtualenv (``--aic-python``; install with ``python -m venv V && V/bin/pip install
  aiconfigurator-core==0.12.0``).

What each predicts differs in one way worth stating: AIConfigurator models the serving engines'
kernels (TensorRT-LLM, SGLang, vLLM), our executor runs PyTorch's (SDPA, cuBLAS); both are scored
against the PyTorch executor's measured step, the workload our simulator exists to predict. The table
is therefore "how well does each tool predict these runs", not a verdict on either database.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sim.resolve import resolve_given  # noqa: E402
from sim.simulate import simulate  # noqa: E402
from topology.atomic_io import write_json_atomic, write_text_atomic  # noqa: E402
from topology.profile import load_profile  # noqa: E402
from validate.kernel_points import load_kernel_points  # noqa: E402
from validate.measured import Measurement, load_measurements, with_iterations  # noqa: E402

PREDICT = REPO / "benchmarks" / "aiconfigurator" / "predict.py"
DEFAULT_RESULTS = "results/hardware/h200x1-families"
DEFAULT_PROFILE = "results/profiles/h200x1-families.json"
DEFAULT_VALIDATION = "results/report-h200x1-families/validation.json"


def aic_shape(m: Measurement) -> dict[str, Any]:
    model, work = m.experiment.model, m.experiment.workload
    shape: dict[str, Any] = {
        "name": m.key, "hidden_size": model.hidden_size, "num_heads": model.num_heads,
        "num_kv_heads": model.num_kv_heads, "head_dim": model.head_dim, "mlp_hidden_size": model.mlp_hidden_size,
        "num_layers": model.num_layers, "gated_mlp": model.gated_mlp, "phase": work.phase,
        "batch_size": work.batch_size}
    shape["context_len" if work.phase == "decode" else "prompt_len"] = (
        work.context_len if work.phase == "decode" else work.prompt_len)
    return shape


def run_aic(python: str, backend: str, shapes: list[dict[str, Any]]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "shapes.json", Path(tmp) / "out.json"
        inp.write_text(json.dumps(shapes))
        subprocess.run([python, str(PREDICT), str(inp), str(out), "--backend", backend, "--no-sol"], check=True)
        results = json.loads(out.read_text())["results"]
    return {r["name"]: float(r["step_s"]) for r in results if r.get("step_s")}


def kernels_only(measurements: list[Measurement], profile_path: str, kernels: str) -> dict[str, float]:
    """Leave one family out, nothing fitted: the calibration profile plus the other families' kernels."""
    base = load_profile(profile_path)
    points = load_kernel_points([kernels])
    predicted = {}
    for m in measurements:
        profile = points.profile_with(base, base.gpu_name, without=m.family)
        result = simulate(resolve_given(with_iterations(m.experiment, 2, 10), m.plan, profile))
        predicted[m.key] = result.metrics.step_time_s
    return predicted


def _errors(measured: dict[str, float], predicted: dict[str, float], keys: list[str]) -> list[float]:
    return [predicted[k] / measured[k] - 1 for k in keys if k in predicted]


def _cell(errors: list[float]) -> str:
    if not errors:
        return "-"
    mape = statistics.mean(abs(e) for e in errors)
    worst = max(errors, key=abs)
    return f"{100 * mape:.1f}% ({100 * statistics.mean(errors):+.1f}%, worst {100 * worst:+.1f}%)"


def table(measurements: list[Measurement], columns: dict[str, dict[str, float]]) -> list[str]:
    measured = {m.key: m.measured_step_time_s for m in measurements}
    groups: dict[tuple[str, str], list[str]] = {}
    for m in measurements:
        groups.setdefault((m.phase, m.family or "-"), []).append(m.key)
    header = ["phase", "family", "runs", *columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for phase in ("decode", "prefill"):
        mine = sorted(k for k in groups if k[0] == phase)
        for key in mine:
            keys = groups[key]
            lines.append("| " + " | ".join([phase, key[1], str(len(keys)),
                                            *(_cell(_errors(measured, p, keys)) for p in columns.values())]) + " |")
        every = [k for key in mine for k in groups[key]]
        lines.append("| " + " | ".join([f"**{phase}**", "**all**", str(len(every)),
                                        *(f"**{_cell(_errors(measured, p, every))}**" for p in columns.values())])
                     + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="calibration profile of the kernels-only column")
    parser.add_argument("--validation", default=DEFAULT_VALIDATION, help="validation.json of the held-out column")
    parser.add_argument("--aic-python", default=None, help="python of a virtualenv with aiconfigurator-core 0.12.0")
    parser.add_argument("--backends", default="sglang,trtllm,vllm")
    parser.add_argument("--out", default="benchmarks/compare_aiconfigurator.md")
    parser.add_argument("--json", default="results/compare-aiconfigurator-h200x1.json")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    measurements = [m for m in load_measurements([args.results]) if m.kernel_ablation is None]
    columns: dict[str, dict[str, float]] = {}
    validation = json.loads(Path(args.validation).read_text())
    columns["ours, held out (fitted, LOFO)"] = {e["key"]: e["held_out_step_time_s"]
                                               for e in validation["experiments"]}
    columns["ours, kernels only (LOFO, no fit)"] = kernels_only(measurements, args.profile,
                                                                str(Path(args.results) / "kernels"))
    aic_versions = {}
    if args.aic_python:
        shapes = [aic_shape(m) for m in measurements]
        for backend in args.backends.split(","):
            columns[f"AIConfigurator 0.12.0, {backend}"] = run_aic(args.aic_python, backend, shapes)
            aic_versions[backend] = "0.12.0"
    aic_flag = f" --aic-python {args.aic_python}" if args.aic_python else ""
    lines = [
        "# Our predictions beside AIConfigurator's, on our measured one-GPU shapes",
        "",
        f"Made by `python benchmarks/compare_aiconfigurator.py{aic_flag}`"
        f" on {len(measurements)} runs measured on 1 x NVIDIA H200 (`{args.results}`); "
        f"{time.perf_counter() - started:.0f} s on this machine. Each cell: MAPE of the step time (mean "
        "signed error, worst signed error); negative = predicted too fast. Held-out and kernels-only columns "
        "never saw the run's shape family (neither its runs nor its kernels); AIConfigurator never saw any of "
        "our runs. See the module docstring for what each column is.",
        "",
        *table(measurements, columns),
        "",
    ]
    write_text_atomic(Path(args.out), "\n".join(lines))
    measured = {m.key: m.measured_step_time_s for m in measurements}
    write_json_atomic(Path(args.json), {
        "results": args.results, "validation": args.validation, "aiconfigurator": aic_versions,
        "runs": [{"key": k, "family": m.family, "phase": m.phase, "measured_step_time_s": measured[k],
                  **{name: col.get(k) for name, col in columns.items()}}
                 for m in measurements for k in [m.key]]})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
