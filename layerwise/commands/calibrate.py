"""``layerwise calibrate``: measure this node and write a hardware profile JSON (and its plot).
The measuring is :mod:`executor.calibrate.run`'s; this module parses and prints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from executor.calibrate.run import CPU_MODELS, GPU_MODELS, SECTIONS, CalibrationRequest, calibrate, plot
from executor.calibrate.summary import summary_table
from topology.atomic_io import check_output_file
from topology.profile import load_profile
from topology.schema.fields import cli_number


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="profile.json", help="profile JSON to write (default: profile.json)")
    parser.add_argument("--gpus", type=cli_number("count"), default=None, help="GPUs to use (default: all visible)")
    parser.add_argument("--model", action="append", default=None, metavar="PRESET",
                        help=f"model preset whose weight shapes to measure (repeatable; default: "
                             f"{', '.join(GPU_MODELS)}; on cpu: {', '.join(CPU_MODELS)})")
    parser.add_argument("--quick", action="store_true", help="smaller grids (~1-2 minutes on one H100)")
    parser.add_argument("--plot", action="store_true", help="also save PROFILE.png beside the profile")
    parser.add_argument("--plot-only", metavar="PROFILE", default=None,
                        help="only plot an existing profile (PROFILE.png beside it)")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                        help="cpu: a plumbing run with tiny sizes (numbers mean nothing)")
    parser.add_argument("--only", default=None, help=f"comma-separated sections to run ({','.join(SECTIONS)})")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip")
    parser.add_argument("--seed", type=cli_number("index"), default=0, help="seed of the random test data")


def _request(args: argparse.Namespace) -> CalibrationRequest:
    return CalibrationRequest(out=args.out, gpus=args.gpus, models=tuple(args.model or ()), quick=bool(args.quick),
                              device=args.device, only=args.only, skip=args.skip, seed=args.seed,
                              command="layerwise calibrate " + " ".join(sys.argv[2:] if len(sys.argv) > 2 else []))


def check_outputs(args: argparse.Namespace) -> None:
    """Before any measurement: the profile and its plot can be written."""
    if args.plot_only:
        check_output_file(Path(args.plot_only).with_suffix(".png"), "--plot-only")
        return
    check_output_file(args.out, "--out")
    if args.plot:
        check_output_file(Path(args.out).with_suffix(".png"), "--plot")


def run(args: argparse.Namespace) -> int:
    check_outputs(args)
    if args.plot_only:
        path = Path(args.plot_only)
        png = plot(load_profile(path), path)
        if png:
            print(f"wrote {png}")
        return 0 if png else 1
    profile = calibrate(_request(args))
    print(summary_table(profile))
    print(f"wrote {args.out}")
    if args.plot:
        png = plot(profile, Path(args.out))
        if png:
            print(f"wrote {png}")
    rejected = profile.raw.get("rejected") or []
    for entry in rejected:  # left out of the profile: the simulator keeps the data file's value
        print(f"layerwise calibrate: {entry['field']} = {entry['value']:.4g} rejected: {entry['reason']}",
              file=sys.stderr)
    return 1 if rejected else 0
