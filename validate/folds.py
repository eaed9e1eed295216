"""Cross-validation splits by experiment: the fit never sees the experiments it is scored on.

Repeated runs of one configuration (the same simulator input, measured again) are held out
together: a twin left in the training set would fit the held-out run's own configuration.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from topology.errors import LayerwiseError

LOO = "loo"
BY_FAMILY = "family"  # one fold per shape family: a family's runs (and its kernels) never train its own fold
BY_GROUP = "group"  # one fold per workload group (one model at one workload, every plan)
BY_LABEL = (BY_FAMILY, BY_GROUP)
LOO_MAX_EXPERIMENTS = 12  # up to this many experiments the default is leave-one-out
DEFAULT_K = 5


@dataclass(frozen=True)
class Fold:
    """Indices into the list of measurements: fit on ``train``, score on ``held_out``."""

    index: int
    train: tuple[int, ...]
    held_out: tuple[int, ...]


def parse_folds(text: str | None, num_configs: int) -> int:
    """``--folds``: ``loo``, an integer K >= 2, or ``None`` (the default for this many configurations);
    ``family`` and ``group`` are read by :func:`label_folds`.

    ``num_configs``: distinct measured configurations (repeats count once). Returns the number
    of folds (``num_configs`` for leave-one-out).
    """
    if num_configs < 2:
        raise LayerwiseError("results", f"held-out error needs at least 2 distinct measured configurations, "
                                        f"got {num_configs}")
    if text is None:
        return num_configs if num_configs <= LOO_MAX_EXPERIMENTS else DEFAULT_K
    if text.strip().lower() == LOO:
        return num_configs
    try:
        k = int(text)
    except ValueError:
        raise LayerwiseError("--folds", f"must be 'loo' or an integer, got {text!r}") from None
    if not 2 <= k <= num_configs:
        raise LayerwiseError("--folds", f"must be between 2 and {num_configs} (the distinct configurations), got {k}")
    return k


def split_folds(
    num_experiments: int, k: int, rng: np.random.Generator, configs: Sequence[Hashable] | None = None
) -> tuple[Fold, ...]:
    """``k`` folds; each experiment is held out exactly once and is never in its fold's training set.

    ``configs``: one label per experiment; experiments with one label are held out together
    (default: every experiment its own). Configurations are shuffled with ``rng`` then dealt
    round-robin, so fold sizes (in configurations) differ by at most one.
    """
    labels = list(configs) if configs is not None else list(range(num_experiments))
    if len(labels) != num_experiments:
        raise LayerwiseError("folds", f"{len(labels)} configuration labels for {num_experiments} experiments")
    distinct = list(dict.fromkeys(labels))
    if not 2 <= k <= len(distinct):
        raise LayerwiseError("folds", f"k={k} must be between 2 and the {len(distinct)} distinct configurations")
    order = rng.permutation(len(distinct))
    fold_of_config: dict[Hashable, int] = {}
    for position, config in enumerate(order):
        fold_of_config[distinct[int(config)]] = position % k
    folds = []
    for index in range(k):
        held_out = tuple(i for i, label in enumerate(labels) if fold_of_config[label] == index)
        train = tuple(i for i, label in enumerate(labels) if fold_of_config[label] != index)
        folds.append(Fold(index=index, train=train, held_out=held_out))
    return tuple(folds)


def label_folds(labels: Sequence[Hashable], what: str) -> tuple[Fold, ...]:
    """One fold per distinct label (in first-seen order): ``--folds family`` or ``group``."""
    distinct = list(dict.fromkeys(labels))
    if len(distinct) < 2:
        raise LayerwiseError("--folds", f"{what} folds need runs of at least 2 {what}s, got {len(distinct)}")
    return tuple(Fold(index=i, train=tuple(j for j, lab in enumerate(labels) if lab != label),
                      held_out=tuple(j for j, lab in enumerate(labels) if lab == label))
                 for i, label in enumerate(distinct))


def describe_folds(k: int, num_experiments: int, num_configs: int | None = None) -> str:
    configs = num_experiments if num_configs is None else num_configs
    if configs == num_experiments:
        if k == num_experiments:
            return f"leave-one-out ({num_experiments} folds)"
        return f"{k}-fold by experiment ({num_experiments} experiments)"
    repeats = f"{num_experiments} experiments, {configs} configurations; repeats held out together"
    if k == configs:
        return f"leave-one-configuration-out ({k} folds; {repeats})"
    return f"{k}-fold by configuration ({repeats})"
