"""The published JSON Schema files are the schema layer's own (regenerated, they are byte for byte the
committed ones), and the experiment schema accepts every shipped experiment and refuses a bad number."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from topology.datafile import data_dir
from topology.schema.experiment import ExperimentFile
from topology.schema.publish import FOLDER, SCHEMAS, schema_text


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_committed_schema_files_equal_the_generated_ones(name: str) -> None:
    assert (FOLDER / name).read_text(encoding="utf-8") == schema_text(SCHEMAS[name]), (
        "regenerate with `python -m topology.schema.publish`")


def shipped() -> list[str]:
    return sorted(e.name for e in data_dir("experiments").iterdir() if e.name.endswith(".yaml"))


@pytest.mark.parametrize("name", shipped())
def test_every_shipped_experiment_meets_the_published_schema(name: str) -> None:
    raw = yaml.safe_load(data_dir("experiments").joinpath(name).read_text(encoding="utf-8"))
    ExperimentFile.model_validate(raw)
    raw["workload"]["batch_size"] = 0
    with pytest.raises(ValidationError):
        ExperimentFile.model_validate(raw)
