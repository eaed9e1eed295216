"""Write the JSON Schema files of the experiment, plan and profile formats: ``python -m topology.schema.publish``
(into ``schemas/`` at the repository root; ``--check`` only says whether they are up to date)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from topology.schema.experiment import ExperimentFile
from topology.schema.plan import PlanFile
from topology.schema.profile import ProfileFile

SCHEMAS: dict[str, type[BaseModel]] = {
    "experiment.schema.json": ExperimentFile,
    "plan.schema.json": PlanFile,
    "profile.schema.json": ProfileFile,
}
FOLDER = Path(__file__).resolve().parents[2] / "schemas"


def schema_text(model: type[BaseModel]) -> str:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for name, model in SCHEMAS.items():
        path = FOLDER / name
        text = schema_text(model)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        FOLDER.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)} (python -m topology.schema.publish)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
