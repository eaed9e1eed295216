"""``layerwise simulate`` of a serving experiment (``workload.phase: serve``): every plan serves the
workload's requests in the simulator; a latency table per plan, ``--json`` (one serving run record per
plan, with its metrics), ``--trace`` (iterations and counters per replica) and ``--plot`` (CDFs of TTFT
and TPOT with the SLO bounds)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from layerwise.terminal.progress import ProgressLine
from layerwise.views.serving_table import serving_summary
from serving.perfetto import serving_trace
from serving.setup import ServingSetup, load_serving_setup
from sim.inputs import Basis, ProfileChoice, resolve_basis
from sim.resolve import plan_inputs
from sim.serving.run import ServingPrediction, simulate_serving
from topology.accuracy import describe_band
from topology.atomic_io import check_output_file, write_bytes_atomic, write_text_atomic
from topology.errors import LayerwiseError

PROGRESS_STEPS = 1000


def trace_path_for(trace_out: str, plan_name: str, several: bool) -> str:
    """``OUT`` for one plan; ``OUT`` with the plan's name before the suffix for several."""
    if not several:
        return trace_out
    path = Path(trace_out)
    return str(path.with_name(f"{path.stem}.{plan_name}{path.suffix or '.json'}"))


def metrics_dict(prediction: ServingPrediction) -> dict[str, Any]:
    return dataclasses.asdict(prediction.metrics)


def _rests_on(basis: Basis, prediction: ServingPrediction) -> str:
    found, unvalidated = basis.band_for(prediction.plan)
    text = describe_band(found.band, unvalidated)
    host = "" if "serving_iteration_host_s" in (basis.profile.params.sim_params if basis.profile else {}) else (
        "; the host time per iteration is the 1 ms placeholder (unmeasured on this profile)")
    return ("per-iteration kernel times: " + (f"{text} ({found.note})" if found.note else text) + host
            + "; the latency percentiles themselves carry no band on this profile (layerwise validate-serving "
              "measures one against served runs; docs/serving.md gives the one H200 study)")


def serve(args: argparse.Namespace, choice: ProfileChoice) -> int:
    setup = load_serving_setup(args.experiment, args.overrides)
    experiment = setup.experiment
    names = [args.plan_name] if args.plan_name else experiment.plan_names
    if args.plan_name and args.plan_name not in experiment.plan_specs:
        raise LayerwiseError("--plan", f"no plan {args.plan_name!r} (plans: {', '.join(experiment.plan_names)})")
    if args.analytic:
        raise LayerwiseError("--analytic", "a serving workload has no closed-form twin: its queues need events")
    for path in (args.json_out, args.trace_out, args.plot_out):
        if path:
            check_output_file(path, "--json" if path == args.json_out else
                              "--trace" if path == args.trace_out else "--plot")
    basis = resolve_basis(experiment, choice)
    print(f"cost model: {basis.profile_label}")
    predictions = [_one(setup, basis, name, args) for name in names]
    for prediction in predictions:
        label = f"{prediction.plan_name} ({prediction.plan.describe()}, {setup.replicas} replica"
        label += "s)" if setup.replicas > 1 else ")"
        print(serving_summary(label, prediction.metrics, _rests_on(basis, prediction)))
    _write_outputs(args, setup, predictions)
    return 0


def _one(setup: ServingSetup, basis: Basis, name: str, args: argparse.Namespace) -> ServingPrediction:
    inputs = plan_inputs(basis, name, jobs=args.jobs or os.cpu_count() or 1)
    line = ProgressLine(f"serve {name}", PROGRESS_STEPS, "of the arrivals")

    def progress(fraction: float, note: str) -> None:
        line.update(max(1, int(fraction * PROGRESS_STEPS)))

    detail = "trace" if args.json_out or args.trace_out else "records"  # the record and the trace need every plan
    return simulate_serving(setup, basis, name, inputs.plan, progress, detail=detail)


def _write_outputs(args: argparse.Namespace, setup: ServingSetup, predictions: list[ServingPrediction]) -> None:
    if args.json_out:
        payload = [{**p.record.to_dict(), "plan_name": p.plan_name, "metrics": metrics_dict(p)} for p in predictions]
        one_or_list = payload[0] if len(payload) == 1 else payload
        write_text_atomic(args.json_out, json.dumps(one_or_list, indent=1, sort_keys=True) + "\n")
        print(f"wrote {args.json_out}")
    if args.trace_out:
        for p in predictions:
            path = trace_path_for(args.trace_out, p.plan_name, len(predictions) > 1)
            trace = serving_trace(p.run, f"{setup.experiment.name} {p.plan_name}",
                                  p.scheduler.num_blocks * setup.replicas)
            write_text_atomic(path, json.dumps(trace) + "\n")
            print(f"wrote {path} (trace of {p.plan_name}: open in ui.perfetto.dev)")
    if args.plot_out:
        from layerwise.views.serving_plot import cdf_png  # matplotlib: only with --plot (the report extra)

        png = cdf_png({p.plan_name: p.run.records for p in predictions}, setup.slos,
                      f"{setup.experiment.name}: simulated TTFT and TPOT")
        write_bytes_atomic(args.plot_out, png)
        print(f"wrote {args.plot_out}")
