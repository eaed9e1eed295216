"""``partitioner: optimal``'s arguments are the search's own: checked before any work, named as the file names them."""

from __future__ import annotations

from typing import Any

import pytest
from search_cases import mini_experiment

from sim.inputs import basis_of, given_profile
from sim.search.options import SearchOptions, spec_options
from sim.search.plan_search import optimal_partitioner
from topology.errors import LayerwiseError
from topology.experiment import build_plan, experiment_from_dict


def _refusal(spec: dict[str, Any]) -> LayerwiseError:
    experiment = mini_experiment("decode-2x2-graphs")
    with pytest.raises(LayerwiseError) as info:
        spec_options(experiment, "best", spec)
    return info.value


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"microbatches": 0}, "plans.best.microbatches", "got 0"),
    ({"microbatches": -2}, "plans.best.microbatches", "got -2"),
    ({"microbatches": 3}, "plans.best.microbatches", "does not divide"),
    ({"max_tpot_ms": -1}, "plans.best.max_tpot_ms", "positive number of milliseconds"),
    ({"max_ttft_ms": 5}, "plans.best.max_ttft_ms", "applies to prefill"),
    ({"gpus": 99}, "plans.best.gpus", "is not between 1 and"),
    ({"family": "best"}, "plans.best.family", "must be one of"),
    ({"top": True}, "plans.best.top", "positive integer"),
    ({"speed": 1}, "plans.best.speed", "not an argument of optimal"),
])
def test_bad_arguments_are_named_as_the_file_names_them(spec: dict[str, Any], field: str, words: str) -> None:
    error = _refusal(spec)
    assert error.field == field and words in error.message, error


def test_good_arguments_become_options_in_seconds() -> None:
    experiment = mini_experiment("decode-2x2-graphs")
    options = spec_options(experiment, "best", {"gpus": 2, "max_tpot_ms": 5, "family": "layer-wise", "top": 3})
    assert options == SearchOptions(top_k=3, gpus=2, max_tpot_s=0.005, family="layer-wise")


def test_the_partitioner_checks_before_it_searches() -> None:
    base = mini_experiment("decode-2x2-graphs")
    raw = {**base.raw, "plans": {"best": {"partitioner": "optimal", "microbatches": 0}}}
    experiment = experiment_from_dict(raw)
    said: list[str] = []
    with pytest.raises(LayerwiseError, match=r"plans\.best\.microbatches"):
        build_plan(experiment, "best", optimal_partitioner(basis_of(experiment, given_profile(None)), 1, said.append))
    assert said == []  # refused before the progress line
