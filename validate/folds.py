"""Cross-validation splits by experiment: the fit never sees the experiments it is scored on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topology.errors import LayerwiseError

LOO = "loo"
LOO_MAX_EXPERIMENTS = 12  # up to this many experiments the default is leave-one-out
DEFAULT_K = 5


@dataclass(frozen=True)
class Fold:
    """Indices into the list of measurements: fit on ``train``, score on ``held_out``."""

    index: int
    train: tuple[int, ...]
    held_out: tuple[int, ...]


def parse_folds(text: str | None, num_experiments: int) -> int:
    """``--folds``: ``loo``, an integer K >= 2, or ``None`` (the default for this many experiments).

    Returns the number of folds (``num_experiments`` for leave-one-out).
    """
    if num_experiments < 2:
        raise LayerwiseError("results", f"held-out error needs at least 2 measured experiments, got {num_experiments}")
    if text is None:
        return num_experiments if num_experiments <= LOO_MAX_EXPERIMENTS else DEFAULT_K
    if text.strip().lower() == LOO:
        return num_experiments
    try:
        k = int(text)
    except ValueError:
        raise LayerwiseError("--folds", f"must be 'loo' or an integer, got {text!r}") from None
    if not 2 <= k <= num_experiments:
        raise LayerwiseError("--folds", f"must be between 2 and {num_experiments} (the experiments), got {k}")
    return k


def split_folds(num_experiments: int, k: int, rng: np.random.Generator) -> tuple[Fold, ...]:
    """``k`` folds; each experiment is held out exactly once and is never in its fold's training set.

    Experiments are shuffled with ``rng`` then dealt round-robin, so fold sizes differ by at most one.
    """
    if not 2 <= k <= num_experiments:
        raise LayerwiseError("folds", f"k={k} must be between 2 and the {num_experiments} experiments")
    order = rng.permutation(num_experiments)
    held: list[list[int]] = [[] for _ in range(k)]
    for position, experiment in enumerate(order):
        held[position % k].append(int(experiment))
    folds = []
    for index, held_out in enumerate(held):
        held_set = set(held_out)
        train = tuple(i for i in range(num_experiments) if i not in held_set)
        folds.append(Fold(index=index, train=train, held_out=tuple(sorted(held_out))))
    return tuple(folds)


def describe_folds(k: int, num_experiments: int) -> str:
    if k == num_experiments:
        return f"leave-one-out ({num_experiments} folds)"
    return f"{k}-fold by experiment ({num_experiments} experiments)"
