"""Kernel time by kind, simulated against profiled: does the simulator put the time where the GPU
spends it, not only get the total right?

A fit of per-kind time scales can match every step time with the time in the wrong kind (more
GEMM time standing in for missing elementwise time): only a profiled trace tells them apart.
Simulated kernels are classified by their operator's kind (``topology.layer_graph.layer_ops``);
profiled kernels by name (:func:`profiled_kind`). Each is given as its share of the kernel time
in its trace times its step time (the simulated step, the measured step), so traces of any
number of iterations compare.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from topology.layer_graph import layer_ops
from topology.model import ModelSpec
from validate.timeline import Bar

GEMM, ATTENTION, ELEMENTWISE = "gemm", "attention", "elementwise and copies"
KINDS = (GEMM, ATTENTION, ELEMENTWISE)
# Substrings of kernel names, lower case: cuBLAS / cuBLASLt (nvjet, sm90_xmma, cutlass) GEMMs, and
# the attention kernels scaled_dot_product_attention dispatches to (cuDNN sdpa, flash, fmha /
# memory-efficient). Anything else (norms, activations, adds, KV-cache copies, memcpy, memset) is
# elementwise.
GEMM_MARKERS = ("nvjet", "gemm", "cutlass", "xmma", "cublas")
ATTENTION_MARKERS = ("sdpa", "flash", "fmha", "attention")
SIMULATED_KINDS = {"gemm": GEMM, "attention": ATTENTION}  # norms, activations, residuals: elementwise


@dataclass(frozen=True)
class KindTime:
    kind: str
    simulated_s: float  # per step
    profiled_s: float  # per step

    @property
    def ratio(self) -> float | None:
        """Profiled over simulated (2.0: the GPU spends twice the simulated time on this kind)."""
        return self.profiled_s / self.simulated_s if self.simulated_s > 0 else None


def profiled_kind(kernel_name: str) -> str:
    name = kernel_name.lower()
    if any(m in name for m in ATTENTION_MARKERS):
        return ATTENTION
    if any(m in name for m in GEMM_MARKERS):
        return GEMM
    return ELEMENTWISE


def simulated_kinds(model: ModelSpec) -> dict[str, str]:
    """Operator name (``attn_norm``, ``qkv``, ...) to kind; all-reduces are not kernels here."""
    return {op.name.split(".", 1)[1]: SIMULATED_KINDS.get(op.kind, ELEMENTWISE)
            for op in layer_ops(model, 0, 1) if op.kind != "allreduce"}


def kind_shares(bars: Sequence[Bar], kind_of: Callable[[Bar], str | None]) -> dict[str, float]:
    """Each kind's share of the bars' total time (bars whose kind is None are left out)."""
    totals = dict.fromkeys(KINDS, 0.0)
    for bar in bars:
        kind = kind_of(bar)
        if kind is not None:
            totals[kind] += bar.duration_s
    whole = sum(totals.values())
    return {k: (v / whole if whole > 0 else 0.0) for k, v in totals.items()}


def kind_times(model: ModelSpec, simulated: Sequence[Bar], simulated_step_s: float, profiled: Sequence[Bar],
               measured_step_s: float) -> tuple[KindTime, ...]:
    ops = simulated_kinds(model)
    sim = kind_shares(simulated, lambda b: ops.get(b.operator))
    real = kind_shares(profiled, lambda b: profiled_kind(b.name))
    return tuple(KindTime(k, sim[k] * simulated_step_s, real[k] * measured_step_s) for k in KINDS)
