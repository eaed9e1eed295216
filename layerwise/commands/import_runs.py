"""``layerwise import SOURCE --out FILE``: another executor's measured runs as an imported-runs file
(``docs/imported-runs.md``), which ``layerwise validate`` reads beside the project's own results."""

from __future__ import annotations

import argparse
from pathlib import Path

from topology.atomic_io import check_output_file
from topology.imported import write_imported
from validate.importers import import_reference_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="the other executor's runs file (today: the reference executor's runs.json)")
    parser.add_argument("--out", required=True, help="the imported-runs JSON to write")
    parser.add_argument("--name", default=None, help="a name for the source (default: the source's folder name)")


def run(args: argparse.Namespace) -> int:
    check_output_file(args.out, "--out")
    name = args.name or f"{Path(args.source).resolve().parent.name}-reference"
    imported = import_reference_runs(args.source, name)
    write_imported(args.out, imported)
    print(f"imported {len(imported.runs)} runs measured on {imported.node.get('gpus')} x {imported.node.get('gpu')} "
          f"by {imported.origin['executor']} -> {args.out}")
    return 0
