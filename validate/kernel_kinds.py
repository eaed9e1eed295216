"""Kernel time by kind, simulated against profiled: does the simulator put the time where the GPU
spends it, not only get the total right?

A fit of per-kind time scales can match every step time with the time in the wrong kind (more
GEMM time standing in for missing elementwise time): only a profiled trace tells them apart.
Simulated kernels are classified by their operator's kind (``topology.layer_graph.layer_ops``),
profiled kernels by name (:func:`classify_kernel`, the classes the timeline figure colours).
Each is given as its share of the kernel time in its trace times its step time (the simulated
step, the measured step), so traces of any number of iterations compare.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from topology.layer_graph import layer_ops
from topology.model import ModelSpec
from validate.timeline import Bar

GEMM, ATTENTION, ELEMENTWISE = "gemm", "attention", "elementwise and copies"
KINDS = (GEMM, ATTENTION, ELEMENTWISE)
KERNEL_CLASSES = (  # (class, substrings of a CUDA kernel's lower-cased name), first match wins
    ("attention", ("flash", "fmha", "attention", "sdpa", "cudnn")),  # what scaled_dot_product_attention runs
    ("gemm", ("gemm", "xmma", "cutlass", "nvjet", "matmul", "sm90")),  # cuBLAS / cuBLASLt
    ("norm / reduce", ("reduce", "norm", "rsqrt")),
    ("copy", ("memcpy", "memset", "copy", "cat")),
    ("elementwise", ("elementwise", "vectorized", "pointwise", "unrolled")),
)
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


def classify_kernel(kernel_name: str) -> str:
    """The class of a profiled kernel by its name (:data:`KERNEL_CLASSES`), else ``other kernel``."""
    lowered = kernel_name.lower()
    for label, needles in KERNEL_CLASSES:
        if any(needle in lowered for needle in needles):
            return label
    return "other kernel"


def profiled_kind(kernel_name: str) -> str:
    """GEMM, attention, or (norms, activations, adds, KV-cache copies, memcpy, memset) elementwise."""
    return SIMULATED_KINDS.get(classify_kernel(kernel_name), ELEMENTWISE)


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
