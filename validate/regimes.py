"""Which simulator parameters each regime fits, and a fit of a training split regime by regime.

Regimes (:data:`topology.accuracy.REGIMES`) are fitted in order, each on its own runs only:

1. ``decode-graph``: device-bound decode (CUDA graphs): kernel rates, bytes, per-kernel cost;
2. ``decode-eager``: host launches, on top of the device parameters step 1 fitted;
3. ``prefill``: prefill's own time scales, on top of both.

So a host-bound eager run from a noisy lease cannot move the device parameters, and decode
runs cannot move prefill's: before this split, one fit of everything made held-out prefill
error twice the unfitted one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from topology.accuracy import REGIMES
from topology.profile import HardwareProfile
from validate.fit import FitResult, ParamSpec, fit_params
from validate.measured import Measurement
from validate.prediction import PredictionMemo

REGIME_CANDIDATES: dict[str, tuple[str, ...]] = {
    # the small kernels' fixed times first (what calibration does not time), then communication, then rates
    "decode-graph": ("norm_latency_s", "elementwise_latency_s", "kv_write_latency_s", "launch_overhead_graph_s",
                     "collective_base_latency_s", "collective_latency_s", "tp_straggler_fraction", "p2p_latency_s",
                     "l2_bw_bytes_per_s", "hbm_efficiency", "gemm_latency_s", "gemm_bw_efficiency",
                     "attention_latency_s", "attention_bw_efficiency", "compute_efficiency", "attention_efficiency"),
    "decode-eager": ("launch_overhead_eager_s",),
    "prefill": ("prefill_gemm_time_scale", "prefill_attention_time_scale", "prefill_elementwise_time_scale"),
}
FITTED_FIRST = "decode-graph"  # the regime of a parameter no list names (device parameters)
# A regime fits at most one parameter per this many distinct configurations of its own (in the
# candidates' order): with fewer, a fold fits its training runs exactly and predicts noise.
MIN_CONFIGS_PER_PARAM = 3

Responsive = Callable[[tuple[str, ...], list[Measurement]], tuple[str, ...]]


def measured_by_profile(profile: HardwareProfile | None) -> tuple[str, ...]:
    """Efficiencies a calibration profile already measured, so they are not fitted by default.

    With measured rates and kernel times the simulator scales each kernel to its measured time,
    so such an efficiency only moves what nothing measured and stands in for something else: on
    the H100's decode runs ``hbm_efficiency`` fitted 0.19, standing in for small kernels'
    latency, which made held-out prefill 45% wrong (its large elementwise kernels do stream).
    """
    if profile is None:
        return ()
    p = profile.params
    names = []
    if p.hbm_bw_bytes_per_s is not None:
        names.append("hbm_efficiency")
    if p.matmul_flops_per_s is not None or p.gemm_points:
        names.append("compute_efficiency")
    if p.gemm_points:  # the base model's GEMM latency and bandwidth are fitted to them (sim.costs.build)
        names += ["gemm_latency_s", "gemm_bw_efficiency"]
    if p.attention_points:
        names += ["attention_efficiency", "attention_latency_s", "attention_bw_efficiency"]
    if p.launch_overhead_graph_s is not None:
        names.append("launch_overhead_graph_s")
    return tuple(names)


def regime_of_param(name: str) -> str:
    for regime, names in REGIME_CANDIDATES.items():
        if name in names:
            return regime
    return FITTED_FIRST


def runs_of(measurements: Sequence[Measurement], regime: str) -> list[Measurement]:
    return [m for m in measurements if m.regime == regime]


def param_budget(measurements: Sequence[Measurement], regime: str) -> int:
    """How many parameters ``regime`` may fit: one per :data:`MIN_CONFIGS_PER_PARAM` of its configurations."""
    configs = len({m.config_key for m in runs_of(measurements, regime)})
    return configs // MIN_CONFIGS_PER_PARAM if configs else 0


def default_params(measurements: list[Measurement], profile: HardwareProfile | None,
                   responsive: Responsive) -> tuple[str, ...]:
    """Per regime, the candidates (less those the profile measured) that move some of its runs'
    simulated times (decided from simulations only, never from measured values), up to the
    regime's :func:`param_budget`."""
    chosen: list[str] = []
    skipped = measured_by_profile(profile)
    for regime in REGIMES:
        runs = runs_of(measurements, regime)
        if runs:
            moved = responsive(tuple(n for n in REGIME_CANDIDATES[regime] if n not in skipped), runs)
            chosen += moved[:param_budget(measurements, regime)]
    return tuple(chosen)


def fit_by_regime(memo: PredictionMemo, train: list[Measurement], specs: tuple[ParamSpec, ...]) -> FitResult:
    """Fit each regime's parameters on that regime's training runs, in :data:`REGIMES` order,
    later regimes on top of the values earlier ones fitted. A regime with no training run leaves
    its parameters at their start (reported as not constrained)."""
    values: dict[str, float] = {}
    unconstrained: list[str] = []
    evaluations = 0
    converged = True
    messages = []
    for regime in REGIMES:
        mine = tuple(s for s in specs if regime_of_param(s.name) == regime)
        if not mine:
            continue
        runs = runs_of(train, regime)
        if not runs:
            values.update({s.name: s.start for s in mine})
            unconstrained += [s.name for s in mine]
            continue
        fit = fit_params(memo, runs, mine, fixed=values)
        values.update(fit.values)
        unconstrained += fit.unconstrained
        evaluations += fit.evaluations
        converged = converged and fit.converged
        messages.append(f"{regime}: {fit.message}")
    errors = [memo.predict(m, values).step_time_s / m.measured_step_time_s - 1.0 for m in train]
    return FitResult(values=values, unconstrained=tuple(unconstrained),
                     training_mape=float(np.mean(np.abs(errors))), evaluations=evaluations, converged=converged,
                     message="; ".join(messages) or "no parameters to fit")
