"""Cross-validation splits: every experiment held out exactly once, never trained on in its fold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from topology.errors import LayerwiseError
from validate.folds import DEFAULT_K, LOO_MAX_EXPERIMENTS, parse_folds, split_folds


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 60), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_each_experiment_is_held_out_once_and_never_trained_on(n: int, data: st.DataObject, seed: int) -> None:
    k = data.draw(st.integers(2, n))
    folds = split_folds(n, k, np.random.default_rng(seed))
    assert len(folds) == k
    held = [i for fold in folds for i in fold.held_out]
    assert sorted(held) == list(range(n))
    for fold in folds:
        assert fold.held_out, "an empty fold scores nothing"
        assert not set(fold.train) & set(fold.held_out)
        assert sorted(fold.train + fold.held_out) == list(range(n))
    sizes = [len(f.held_out) for f in folds]
    assert max(sizes) - min(sizes) <= 1


def test_leave_one_out_holds_out_single_experiments() -> None:
    folds = split_folds(5, 5, np.random.default_rng(0))
    assert sorted(f.held_out for f in folds) == [(0,), (1,), (2,), (3,), (4,)]
    for f in folds:
        assert len(f.train) == 4 and f.held_out[0] not in f.train


def test_split_is_deterministic_for_a_seed() -> None:
    a = split_folds(20, 5, np.random.default_rng(7))
    b = split_folds(20, 5, np.random.default_rng(7))
    assert a == b


def test_parse_folds_defaults_and_errors() -> None:
    assert parse_folds(None, LOO_MAX_EXPERIMENTS) == LOO_MAX_EXPERIMENTS
    assert parse_folds(None, 30) == DEFAULT_K
    assert parse_folds("loo", 30) == 30
    assert parse_folds("4", 30) == 4
    with pytest.raises(LayerwiseError, match="--folds"):
        parse_folds("1", 30)
    with pytest.raises(LayerwiseError, match="--folds"):
        parse_folds("many", 30)
    with pytest.raises(LayerwiseError, match="at least 2"):
        parse_folds(None, 1)


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(st.integers(0, 9), min_size=2, max_size=40), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_repeats_of_one_configuration_are_held_out_together(labels: list[int], data: st.DataObject, seed: int) -> None:
    distinct = len(set(labels))
    if distinct < 2:
        with pytest.raises(LayerwiseError):
            split_folds(len(labels), 2, np.random.default_rng(seed), labels)
        return
    k = data.draw(st.integers(2, distinct))
    folds = split_folds(len(labels), k, np.random.default_rng(seed), labels)
    assert sorted(i for fold in folds for i in fold.held_out) == list(range(len(labels)))
    for fold in folds:
        held_configs = {labels[i] for i in fold.held_out}
        assert held_configs, "an empty fold scores nothing"
        assert not held_configs & {labels[i] for i in fold.train}, "a held-out run's twin was trained on"


def test_distinct_configurations_split_as_experiments() -> None:
    plain = split_folds(12, 4, np.random.default_rng(3))
    labelled = split_folds(12, 4, np.random.default_rng(3), [f"c{i}" for i in range(12)])
    assert plain == labelled


def test_leave_one_configuration_out_counts_configurations() -> None:
    labels = ["a", "b", "a", "c"]
    assert parse_folds("loo", len(set(labels))) == 3
    folds = split_folds(4, 3, np.random.default_rng(0), labels)
    assert sorted(f.held_out for f in folds) == [(0, 2), (1,), (3,)]
