"""``layerwise validate RESULTS... [--profile P | --datasheet] --out DIR``: fit the simulator to measured
runs, score it on experiments the fit never saw, and write the report and fitted profile
(the pipeline: :mod:`validate.pipeline`)."""

from __future__ import annotations

import argparse
import shlex

from sim.inputs import ProfileChoice
from topology.schema.fields import cli_number
from validate.pipeline import ValidationRequest, run_validation
from validate.regimes import REGIME_CANDIDATES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="measured result JSON files or folders (searched recursively)")
    parser.add_argument("--profile", help="calibration profile JSON (layerwise calibrate) or shipped name; default: "
                                          "the shipped profile of the measured GPU (its measurements, not its fit)")
    parser.add_argument("--datasheet", action="store_true", help="no profile: fit from the data files alone")
    parser.add_argument("--out", required=True, help="folder for report.md, report.html, fitted-profile.json")
    candidates = "; ".join(f"{regime}: {', '.join(names)}" for regime, names in REGIME_CANDIDATES.items())
    parser.add_argument("--params", help="comma-separated simulator parameters to fit, each on its own regime's "
                        f"runs (default: per regime, those of [{candidates}] the data responds to, at most one per "
                        "3 configurations of the regime; efficiencies the profile measured are not fitted)")
    parser.add_argument("--folds", help="'loo' or K for K-fold by configuration (default: loo up to 12 "
                        "configurations, else 5); 'family': one fold per shape family (a family's kernels "
                        "from --kernels left out with it); 'group': one fold per workload group (one model at "
                        "one workload, every plan)")
    parser.add_argument("--kernels", nargs="+", metavar="DIR", default=[],
                        help="kernels timed alone by shape family (the shape study's kernels/*.json): added to "
                             "the profile's measured points")
    parser.add_argument("--split-seed", type=cli_number("index"), default=0,
                        help="seed of the fold shuffle (default 0)")
    parser.add_argument("--extrapolate", action="append", metavar="NAME[@CLUSTER]", default=[],
                        help="an experiment (shipped name or YAML path, optionally on another cluster preset) to "
                             "predict beyond the measured scale; repeatable (default: every shipped experiment "
                             "that needs more GPUs than any measured run used, in a number format the runs used)")
    parser.add_argument("--no-extrapolation", action="store_true",
                        help="predict no experiment beyond the measured scale")
    parser.add_argument("--compare-leases", nargs="+", metavar="RESULTS", default=[],
                        help="result files or folders of other machine leases: set beside the fitted runs of the "
                             "same entries in the report (how far step times move between leases), never fitted "
                             "or scored as accuracy")
    parser.add_argument("--ship-profile", metavar="PATH",
                        help="also write the fitted profile without its raw measurements to PATH, to ship with "
                             "the package (topology/data/profiles/<gpu preset>.json, loaded by name)")



def run(args: argparse.Namespace) -> int:
    request = ValidationRequest(
        results=tuple(args.results), out=args.out, profile=ProfileChoice(path=args.profile, datasheet=args.datasheet),
        params=args.params, folds=args.folds, split_seed=args.split_seed, extrapolate=tuple(args.extrapolate),
        no_extrapolation=args.no_extrapolation, compare_leases=tuple(args.compare_leases),
        ship_profile=args.ship_profile, kernels=tuple(args.kernels),
        command="layerwise validate " + " ".join(shlex.quote(a) for a in _command_args(args)))
    outcome = run_validation(request)
    for band in outcome.bands:
        family = f", family {band.family}" if band.family else ""
        print(f"held-out {band.regime}{family}: 90% within ±{100 * band.half_width:.1f}%, MAPE {100 * band.mape:.1f}%, "
              f"worst {100 * band.worst:.1f}% "
              f"({band.runs} runs, {band.configurations} configurations, {band.hosts} leases)")
    print(f"fitted {outcome.fitted_values}")
    print(f"wrote {', '.join(outcome.written)}")
    return 0


def _command_args(args: argparse.Namespace) -> list[str]:
    words = [*args.results, "--out", str(args.out)]
    if args.profile:
        words += ["--profile", args.profile]
    if args.datasheet:
        words.append("--datasheet")
    if args.params:
        words += ["--params", args.params]
    if args.folds:
        words += ["--folds", args.folds]
    if args.split_seed:
        words += ["--split-seed", str(args.split_seed)]
    for target in args.extrapolate:
        words += ["--extrapolate", target]
    if args.no_extrapolation:
        words.append("--no-extrapolation")
    if args.compare_leases:
        words += ["--compare-leases", *args.compare_leases]
    if args.kernels:
        words += ["--kernels", *args.kernels]
    if args.ship_profile:
        words += ["--ship-profile", args.ship_profile]
    return words
