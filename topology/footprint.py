"""Per-device memory footprint of a stage: weights, KV cache, transient activations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import Any

from topology.errors import LayerwiseError
from topology.layer_graph import layer_kv_bytes_per_device, layer_template, layer_weight_bytes_per_device
from topology.model import ModelSpec
from topology.units import format_bytes
from topology.workload import Workload

FOOTPRINT_COUNTS = ("weights", "weights+kv", "weights+kv+activations")


@dataclass(frozen=True)
class Footprint:
    """Bytes one device of a stage holds."""

    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes

    def counted_bytes(self, counts: str) -> int:
        """The part that ``counts`` (one of FOOTPRINT_COUNTS) says must fit."""
        if counts == "weights":
            return self.weights_bytes
        if counts == "weights+kv":
            return self.weights_bytes + self.kv_cache_bytes
        return self.total_bytes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def activation_peak_bytes(model: ModelSpec, tp_degree: int, workload: Workload, microbatches: int) -> int:
    """Transient activations of one microbatch in flight: the widest operator's input and
    output plus the residual stream (``tokens * (in + out + hidden) * d``), an estimate."""
    shape = workload.token_shape(microbatches)
    widest = layer_template(model, tp_degree).widest_gemm_features
    return shape.tokens * (widest + model.hidden_size) * model.dtype_bytes


@cache
def stage_footprint(
    model: ModelSpec, num_layers: int, tp_degree: int, workload: Workload, microbatches: int
) -> Footprint:
    """Footprint of one device of a stage of ``num_layers`` layers at TP ``tp_degree``.

    The KV cache of every sequence (all microbatches) lives on the stage for the whole run.
    """
    return Footprint(
        weights_bytes=num_layers * layer_weight_bytes_per_device(model, tp_degree),
        kv_cache_bytes=num_layers
        * layer_kv_bytes_per_device(model, tp_degree, workload.batch_size, workload.kv_capacity_tokens),
        activation_bytes=activation_peak_bytes(model, tp_degree, workload, microbatches),
    )


# what a plan's partitioner can change when the weights alone overflow HBM
_WEIGHT_FIELDS = {"tp-pp": "pp", "cache-fit": "capacity"}


def check_stages_fit(
    model: ModelSpec,
    workload: Workload,
    microbatches: int,
    stages: Sequence[tuple[int, int]],
    hbm_capacity_bytes: int,
    partitioner: str,
    fit_counts: str | None = None,
) -> None:
    """Refuse stages (``(num_layers, tp_degree)`` each) whose per-device footprint exceeds HBM.

    The error names the input to change and the largest value that fits with these stages:
    the batch size or the context (prompt) length when the workload's KV cache and
    activations overflow, or the partitioner's argument (``pp``, ``capacity``) when the
    weights alone do.
    """

    def fits(w: Workload) -> bool:
        return all(stage_footprint(model, n, tp, w, microbatches).total_bytes <= hbm_capacity_bytes
                   for n, tp in stages)

    if fits(workload):
        return
    index, (num_layers, tp) = next(
        (i, s) for i, s in enumerate(stages)
        if stage_footprint(model, s[0], s[1], workload, microbatches).total_bytes > hbm_capacity_bytes
    )
    fp = stage_footprint(model, num_layers, tp, workload, microbatches)
    need = (f"stage {index} ({num_layers} layers at TP{tp}) needs {format_bytes(fp.total_bytes)} per device "
            f"(weights {format_bytes(fp.weights_bytes)}, KV {format_bytes(fp.kv_cache_bytes)}, activations "
            f"{format_bytes(fp.activation_bytes)}), HBM holds {format_bytes(hbm_capacity_bytes)}")
    length_field = "prompt_len" if workload.phase == "prefill" else "context_len"
    length = getattr(workload, length_field)

    def with_length(value: int) -> Workload:
        return replace(workload, prompt_len=value) if workload.phase == "prefill" else replace(
            workload, context_len=value, prompt_len=min(workload.prompt_len, value))

    smallest = replace(with_length(1), batch_size=microbatches)
    if not fits(smallest):
        raise LayerwiseError(*_weights_overflow(model, workload, microbatches, num_layers, tp,
                                                hbm_capacity_bytes, partitioner, fit_counts, need))
    max_batch = _largest(1, workload.batch_size // microbatches,
                         lambda k: fits(replace(workload, batch_size=k * microbatches)))
    max_length = _largest(1, length, lambda value: fits(with_length(value)))
    batch_text = (f"at {length_field} {length:,} the largest batch_size that fits is "
                  + (f"{max_batch * microbatches:,}" if max_batch else "none")
                  + (f" (a multiple of microbatches={microbatches})" if microbatches > 1 and max_batch else ""))
    length_text = (f"at batch_size {workload.batch_size:,} the largest {length_field} that fits is "
                   + (f"{max_length:,}" if max_length else "none"))
    if max_batch:
        raise LayerwiseError("workload.batch_size",
                             f"{workload.batch_size:,} does not fit: {need}; {batch_text}; {length_text}")
    raise LayerwiseError(f"workload.{length_field}",
                         f"{length:,} does not fit: {need}; {length_text}; {batch_text}")


def _weights_overflow(model: ModelSpec, workload: Workload, microbatches: int, num_layers: int, tp: int,
                      hbm_capacity_bytes: int, partitioner: str, fit_counts: str | None,
                      need: str) -> tuple[str, str]:
    """(field, message) when even the smallest batch and context overflow: too many layers per device."""
    per_device = _largest(1, num_layers, lambda n: stage_footprint(
        model, n, tp, workload, microbatches).total_bytes <= hbm_capacity_bytes)
    field = _WEIGHT_FIELDS.get(partitioner, "plan")
    if not per_device:
        return field, f"{need}; not one layer fits at TP{tp} with this workload: use a larger tp"
    fit = f"at most {per_device} layers at TP{tp} fit one device with this workload"
    if partitioner == "tp-pp":
        return field, f"{need}; {fit}, so pp must be at least {-(-model.num_layers // per_device)}"
    if partitioner == "cache-fit" and fit_counts is not None:
        limit = stage_footprint(model, per_device + 1, tp, workload, microbatches).counted_bytes(fit_counts)
        return field, (f"{need}; {fit}: the largest capacity that groups no more is {limit - 1:,} B "
                       f"(counting {fit_counts})")
    return field, f"{need}; {fit}"


def _largest(low: int, high: int, ok: Callable[[int], bool]) -> int | None:
    """The largest value in [low, high] for which ``ok`` holds (``ok`` true up to a point, then
    false), or None when it fails at ``low``. Binary search: about 30 calls for 1e9."""
    if high < low or not ok(low):
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if ok(middle):
            low = middle
        else:
            high = middle - 1
    return low
