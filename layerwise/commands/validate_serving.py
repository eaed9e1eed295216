"""``layerwise validate-serving FOLDER [--profile P] [--fit REGEX] [--slo ...] --out DIR``: measured
serving runs against the simulator, TTFT, TPOT and E2E at p50, p90 and p99, and the capacity under SLOs
(the work: :mod:`validate.serving.pipeline`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serving.slo import SloSpec
from serving.slo_flags import slo_spec_from_flags
from sim.inputs import ProfileChoice, choose_measured_profile
from topology.atomic_io import check_output_folder, write_bytes_atomic, write_text_atomic
from topology.profile import write_profile
from validate.prediction import with_sim_params
from validate.serving.pipeline import validate_serving
from validate.serving.report import markdown, percentiles_png
from validate.serving.runs import load_serving_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a folder of measured serving runs (layerwise-serving-run records, "
                                       "e.g. results/hardware/h200x1-serving)")
    parser.add_argument("--profile", help="hardware profile JSON or shipped name (default: the shipped profile "
                                          "of the measured GPU)")
    parser.add_argument("--datasheet", action="store_true", help="no profile: the data files alone")
    parser.add_argument("--fit", metavar="REGEX", help="fit the serving host parameters on the runs whose name "
                        "matches REGEX and hold out the rest (default: the profile's host parameters, all held out)")
    parser.add_argument("--slo", action="append", default=[], metavar="METRIC_PCT_UNIT=BOUND",
                        help="an SLO for the capacity comparison, e.g. tpot_p99_ms=30; repeatable")
    parser.add_argument("--out", required=True, help="folder for report.md, serving-validation.json, "
                                                     "percentiles.png and fitted-profile.json")


def run(args: argparse.Namespace) -> int:
    out = check_output_folder(args.out, "--out")
    slos = slo_spec_from_flags(args.slo, SloSpec())
    runs = load_serving_runs(args.folder)
    gpu = str(runs[0].record.environment.get("gpu_name") or "")
    chosen = choose_measured_profile(gpu or None, ProfileChoice(path=args.profile, datasheet=args.datasheet))

    def say(message: str) -> None:
        print(f"[validate-serving] {message}", file=sys.stderr, flush=True)

    say(f"{len(runs)} measured serving runs from {args.folder}; {chosen.label}")
    found = validate_serving(args.folder, runs, chosen.profile, chosen.label, args.fit, slos, say)
    write_text_atomic(out / "report.md", markdown(found))
    write_text_atomic(out / "serving-validation.json", json.dumps(found.to_dict(), indent=1) + "\n")
    write_bytes_atomic(out / "percentiles.png", percentiles_png(found))
    if found.fit is not None:
        write_profile(Path(out) / "fitted-profile.json", with_sim_params(chosen.profile, found.host_params, gpu))
    for summary in found.summary:
        print(f"held-out {summary.metric.upper()} {summary.percentile}: mean |error| {summary.mean_abs * 100:.1f}%, "
              f"worst {summary.worst * 100:+.1f}% ({summary.runs} runs)")
    for capacity in found.capacities:
        error = "-" if capacity.error is None else f"{capacity.error * 100:+.1f}%"
        low, high = capacity.measured.meets_up_to_per_s, capacity.measured.fails_at_per_s
        predicted = "none" if capacity.predicted_per_s is None else f"{capacity.predicted_per_s:.2f}/s"
        print(f"capacity {capacity.runs[0]}..: measured {low} to {high} req/s, predicted {predicted}, error {error}")
    print(f"wrote {out / 'report.md'}, {out / 'serving-validation.json'}, {out / 'percentiles.png'}")
    return 0
