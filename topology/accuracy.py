"""What a prediction's accuracy rests on: held-out error by regime, and the parts never measured.

``layerwise validate`` writes one :class:`RegimeError` per regime it could score into the fitted
profile (``HardwareProfile.validation``). Every command that prints a prediction looks up the
band of the prediction's own regime (:func:`band_for`) and names the components of the plan
that the validation runs never exercised (:func:`unvalidated_components`): those never borrow
another regime's band.

Regimes (:func:`regime_of`):

* ``decode-graph``: decode with CUDA graphs (device-bound: kernels and bytes);
* ``decode-eager``: decode with eager launches (host-bound for small models; varies by host);
* ``prefill``: one forward pass over the prompts (compute-bound).

Components (:func:`plan_components`): ``kernels`` (every plan), ``allreduce`` (a stage with
TP > 1), ``p2p`` (more than one stage), ``cross-node`` (a stage boundary or a TP group that
crosses nodes).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

from topology.cluster import Cluster
from topology.errors import LayerwiseError, reading
from topology.plan import Plan

REGIMES = ("decode-graph", "decode-eager", "prefill")
COMPONENTS = ("kernels", "allreduce", "p2p", "cross-node")
COMPONENT_WORDS = {"kernels": "kernels", "allreduce": "all-reduce", "p2p": "point-to-point",
                   "cross-node": "cross-node links"}


def regime_of(phase: str, cuda_graphs: bool) -> str:
    if phase == "prefill":
        return "prefill"
    return "decode-graph" if cuda_graphs else "decode-eager"


@dataclass(frozen=True)
class RegimeError:
    """Held-out error of the simulator against hardware, for one regime on one GPU."""

    regime: str  # one of REGIMES
    gpu: str  # the GPU the runs were measured on (its device name)
    runs: int  # held-out predictions behind the figures
    configurations: int  # distinct configurations among them
    mape: float  # mean |simulated - measured| / measured over held-out runs (a fraction)
    worst: float  # the largest held-out |error| (a fraction)
    components: tuple[str, ...]  # what the runs exercised (a subset of COMPONENTS)
    hosts: int = 1  # distinct hosts / leases the runs came from
    source: str = ""  # the report the figures come from

    def __post_init__(self) -> None:
        if self.regime not in REGIMES:
            raise LayerwiseError("validation.regime", f"must be one of {REGIMES}, got {self.regime!r}")
        unknown = sorted(set(self.components) - set(COMPONENTS))
        if unknown:
            raise LayerwiseError("validation.components", f"unknown {unknown[0]!r} (known: {', '.join(COMPONENTS)})")
        for name in ("mape", "worst"):
            value = getattr(self, name)
            if not value >= 0.0:
                raise LayerwiseError(f"validation.{name}", f"must be >= 0, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def regime_error_from_dict(raw: dict[str, Any]) -> RegimeError:
    with reading("validation"):
        return RegimeError(
            regime=str(raw["regime"]), gpu=str(raw["gpu"]), runs=int(raw["runs"]),
            configurations=int(raw["configurations"]), mape=float(raw["mape"]), worst=float(raw["worst"]),
            components=tuple(str(c) for c in raw["components"]), hosts=int(raw.get("hosts", 1)),
            source=str(raw.get("source", "")),
        )


def band_for(validation: tuple[RegimeError, ...], regime: str) -> RegimeError | None:
    """The held-out error of this regime, if validation scored it."""
    for entry in validation:
        if entry.regime == regime:
            return entry
    return None


def plan_components(plan: Plan, cluster: Cluster, loops_back: bool) -> tuple[str, ...]:
    """The components a plan's step time depends on (``loops_back``: decode's last -> first send)."""
    parts = ["kernels"]
    if any(stage.tp_degree > 1 for stage in plan.stages):
        parts.append("allreduce")
    if plan.num_stages > 1:
        parts.append("p2p")
    nodes = [{cluster.node_of(d) for d in stage.devices} for stage in plan.stages]
    crossing = any(len(n) > 1 for n in nodes)
    pairs = list(itertools.pairwise(nodes))
    if loops_back and plan.num_stages > 1:
        pairs.append((nodes[-1], nodes[0]))
    crossing = crossing or any(a != b for a, b in pairs)
    if crossing:
        parts.append("cross-node")
    return tuple(parts)


def unvalidated_components(components: tuple[str, ...], band: RegimeError | None) -> tuple[str, ...]:
    """The plan's components that the band's runs never exercised (all of them without a band)."""
    covered = set(band.components) if band is not None else set()
    return tuple(c for c in components if c not in covered)


def describe_band(band: RegimeError | None, unvalidated: tuple[str, ...]) -> str:
    """One phrase: what a prediction's error band is, and what it does not cover."""
    missing = ", ".join(COMPONENT_WORDS[c] for c in unvalidated)
    if band is None:
        return f"no validation band; unvalidated: {missing}" if missing else "no validation band"
    text = (f"±{band.mape:.1%} held-out {band.regime} error on {band.gpu} "
            f"({band.runs} runs, worst {band.worst:.1%})")
    return f"{text}; unvalidated: {missing}" if missing else text
