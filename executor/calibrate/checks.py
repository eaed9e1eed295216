"""Is a calibrated number physical? Checks against the points it came from and the data file.

A profile parameter that fails a check is not written (it stays ``None``, so the simulator keeps
the data file's value); the reason goes to ``raw["rejected"]`` and ``layerwise calibrate``
exits non-zero naming the field and value. Pure: no torch.

* Rates may not exceed the peak the GPU data file states (``topology/data/gpus/*.yaml``, copied
  into the profile's ``environment.datasheet``): HBM copy and read bandwidth against
  ``hbm_bw_bytes_per_s``, the best GEMM rate against ``dense_bf16_flops_per_s``; usable L2 may
  not exceed ``l2_capacity_bytes``. Without a data file (a CPU run) only the fit checks apply.
* A latency + bandwidth fit (collectives) must describe its own points (median relative error
  at most :data:`FIT_TOLERANCE`), and its bandwidth term must account for at least
  :data:`MIN_BANDWIDTH_SHARE` of the largest message's time: otherwise every size was
  latency-bound and the fitted bandwidth is whatever the optimiser stopped at.
* A launch cost is the slope of burst time against kernels; a slope of 0 means the bursts did
  not grow with their kernel count.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from executor.calibrate.fit import collective_factor
from topology.profile import CollectiveFit, ProfileParams

BOUND_SLACK = 0.02  # a measured rate may pass the datasheet peak by this much (the datasheet's rounding)
FIT_TOLERANCE = 0.25  # median |model / measured - 1| a fit must reach on its own points
MIN_BANDWIDTH_SHARE = 0.25  # share of the largest message's time the bandwidth term must explain

# (profile field, datasheet key): the measured value may not exceed the datasheet's
_CEILINGS = (
    ("hbm_bw_bytes_per_s", "hbm_bw_bytes_per_s"),
    ("hbm_read_bw_bytes_per_s", "hbm_bw_bytes_per_s"),
    ("matmul_flops_per_s", "dense_bf16_flops_per_s"),
    ("l2_usable_bytes", "l2_capacity_bytes"),
)


@dataclass(frozen=True)
class Rejection:
    field: str  # the profile field (``params.<name>`` or ``collectives.<op>/<group>``)
    value: float
    reason: str

    def line(self) -> str:
        return f"{self.field} = {self.value:.4g} rejected: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ceiling_rejections(params: ProfileParams, datasheet: dict[str, Any]) -> list[Rejection]:
    out = []
    for name, sheet_key in _CEILINGS:
        value = getattr(params, name)
        ceiling = datasheet.get(sheet_key)
        if value is None or not ceiling:
            continue
        slack = 0.0 if name == "l2_usable_bytes" else BOUND_SLACK
        if value > float(ceiling) * (1.0 + slack):
            out.append(Rejection(f"params.{name}", float(value),
                                 f"above the data file's {sheet_key} {float(ceiling):.4g}"))
        elif value <= 0:
            out.append(Rejection(f"params.{name}", float(value), "must be > 0"))
    return out


def launch_rejections(params: ProfileParams) -> list[Rejection]:
    return [Rejection(f"params.{name}", 0.0, "burst time did not grow with the kernels in the burst")
            for name in ("launch_overhead_eager_s", "launch_overhead_graph_s") if getattr(params, name) == 0.0]


def collective_fit_rejection(fit: CollectiveFit, samples: Sequence[dict[str, Any]]) -> Rejection | None:
    """``fit`` against the samples of its op and group size (``{"nbytes", "time_s"}``)."""
    own = [s for s in samples if s["op"] == fit.op and int(s["group_size"]) == fit.group_size]
    if not own:
        return None
    factor = collective_factor(fit.op, fit.group_size)
    errors = sorted(abs((fit.latency_s + factor * float(s["nbytes"]) / fit.bw_bytes_per_s) / float(s["time_s"]) - 1.0)
                    for s in own)
    median_error = errors[len(errors) // 2]
    field = f"collectives.{fit.op}/{fit.group_size}"
    if median_error > FIT_TOLERANCE:
        return Rejection(field, fit.bw_bytes_per_s,
                         f"the fit misses its own points by {median_error:.0%} (median; tolerance {FIT_TOLERANCE:.0%})")
    largest = max(own, key=lambda s: float(s["nbytes"]))
    share = factor * float(largest["nbytes"]) / fit.bw_bytes_per_s / float(largest["time_s"])
    if share < MIN_BANDWIDTH_SHARE:
        return Rejection(field, fit.bw_bytes_per_s,
                         f"bandwidth not measured: the largest message ({int(largest['nbytes'])} bytes) is "
                         f"latency-bound (bandwidth term {share:.0%} of its time)")
    return None


def reject_unphysical(params: ProfileParams, datasheet: dict[str, Any], collective_samples: Sequence[dict[str, Any]]
                      ) -> tuple[ProfileParams, tuple[Rejection, ...]]:
    """``params`` without the values that fail a check, and the reasons."""
    rejections = ceiling_rejections(params, datasheet) + launch_rejections(params)
    kept_collectives = []
    for fit in params.collectives:
        rejection = collective_fit_rejection(fit, collective_samples)
        if rejection is None:
            kept_collectives.append(fit)
        else:
            rejections.append(rejection)
    cleared: dict[str, Any] = {r.field.removeprefix("params."): None
                               for r in rejections if r.field.startswith("params.")}
    return dataclasses.replace(params, collectives=tuple(kept_collectives), **cleared), tuple(rejections)
