"""Per-device memory footprint of a stage: weights, KV cache, transient activations."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from topology.layer_graph import layer_kv_bytes_per_device, layer_ops, layer_weight_bytes_per_device
from topology.model import ModelSpec
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
    widest = 0
    for op in layer_ops(model, 0, tp_degree):
        if op.kind == "gemm":
            widest = max(widest, op.in_features + op.out_features)
    return shape.tokens * (widest + model.hidden_size) * model.dtype_bytes


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
