"""Every iteration of a run as columns (one array per field), for runs too long to keep an
``IterationRecord`` and its plan's items per iteration: what the fast driver keeps at
``detail="records"`` (``serving.fast.driver``).

Row ``i`` is the ``i``-th iteration started (all replicas, in start order), as ``IterationRecord``
has it, the items reduced to counts: new tokens, padded tokens, CUDA graph or not, sequences, decodes
and requests preempted while it was scheduled.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np

from serving.shape import IterationShape

_INT_COLUMNS = ("replica", "iteration", "num_tokens", "padded_tokens", "cuda_graph", "num_seqs", "num_decodes",
                "num_preempted", "num_waiting", "num_running", "kv_blocks_used")
_FLOAT_COLUMNS = ("start_s", "end_s", "duration_s")


@dataclass(frozen=True)
class IterationLog:
    """Columns of equal length (see the module docstring); ``cuda_graph`` is 0 or 1."""

    replica: np.ndarray
    iteration: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    duration_s: np.ndarray
    num_tokens: np.ndarray
    padded_tokens: np.ndarray
    cuda_graph: np.ndarray
    num_seqs: np.ndarray
    num_decodes: np.ndarray
    num_preempted: np.ndarray
    num_waiting: np.ndarray
    num_running: np.ndarray
    kv_blocks_used: np.ndarray

    def __len__(self) -> int:
        return len(self.start_s)


class IterationLogBuilder:
    """Appends one row per iteration; ``build()`` gives the ``IterationLog``."""

    def __init__(self) -> None:
        self._ints: dict[str, array[int]] = {name: array("q") for name in _INT_COLUMNS}
        self._floats: dict[str, array[float]] = {name: array("d") for name in _FLOAT_COLUMNS}
        self._int_rows = [self._ints[name].append for name in _INT_COLUMNS]
        self._float_rows = [self._floats[name].append for name in _FLOAT_COLUMNS]

    def add(self, replica: int, iteration: int, shape: IterationShape, num_preempted: int, num_waiting: int,
            num_running: int, kv_blocks_used: int, start_s: float, end_s: float, duration_s: float) -> None:
        ints = (replica, iteration, shape.num_tokens, shape.padded_tokens, int(shape.cuda_graph),
                shape.num_decodes + len(shape.chunks), shape.num_decodes, num_preempted, num_waiting, num_running,
                kv_blocks_used)
        for append, value in zip(self._int_rows, ints, strict=True):
            append(value)
        for append_float, value_s in zip(self._float_rows, (start_s, end_s, duration_s), strict=True):
            append_float(value_s)

    def build(self) -> IterationLog:
        columns = {name: np.frombuffer(values, dtype=np.int64).copy() for name, values in self._ints.items()}
        columns.update({name: np.frombuffer(values, dtype=np.float64).copy() for name, values in self._floats.items()})
        return IterationLog(**columns)
