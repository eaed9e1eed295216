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
    count = "num_requests" if raw["workload"]["phase"] == "serve" else "batch_size"
    raw["workload"][count] = 0
    with pytest.raises(ValidationError):
        ExperimentFile.model_validate(raw)


@pytest.mark.parametrize(("section", "key", "value"), [
    ("arrivals", "rate_per_s", 0), ("arrivals", "rate_per_s", float("nan")), ("arrivals", "kind", "burst"),
    ("prompt_tokens", "median_tokens", -1), ("prompt_tokens", "mu", 6.9), ("output_tokens", "sigma", "wide"),
])
def test_the_experiment_schema_refuses_a_bad_serving_workload(section: str, key: str, value: object) -> None:
    raw = yaml.safe_load(data_dir("experiments").joinpath("llama3-8b-h100-serve.yaml").read_text(encoding="utf-8"))
    raw["workload"][section][key] = value
    with pytest.raises(ValidationError):
        ExperimentFile.model_validate(raw)


def test_serving_sections_belong_to_a_serving_workload() -> None:
    raw = yaml.safe_load(data_dir("experiments").joinpath("llama3-8b-h100-serve.yaml").read_text(encoding="utf-8"))
    raw["scheduler"]["max_num_seqs"] = 0
    with pytest.raises(ValidationError, match="max_num_seqs"):
        ExperimentFile.model_validate(raw)
    fixed = yaml.safe_load(data_dir("experiments").joinpath("tiny-cpu.yaml").read_text(encoding="utf-8"))
    assert fixed["workload"]["phase"] != "serve"
    fixed["slo"] = {"ttft": {"p99": 0.5}}
    with pytest.raises(ValidationError, match="serving workload"):
        ExperimentFile.model_validate(fixed)
