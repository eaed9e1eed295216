"""What a prediction's accuracy rests on: held-out error by regime, and the parts never measured.

``layerwise validate`` writes :class:`RegimeError` s into the fitted profile
(``HardwareProfile.validation``): per regime it scored, one for all its runs and, where the runs
come in shape families (the shape study), one per family with the family's measured layer shapes;
and one per communication pattern its multi-GPU runs exercised (the TP group sizes of their
all-reduces). A band is a promise: its ``bound`` is the split-conformal 90% quantile of the
held-out |errors| (the ``ceil(0.9 (n + 1))``-th smallest of ``n``; the worst error when ``n`` is too
small for that), so at least 90% of held-out errors fall inside it.

Every command that prints a prediction looks up its band (:func:`band_for`): the band of the
nearest measured family when the model's layer shape is near one (:func:`shape_features`, within
:data:`NEAR_SHAPE`), "outside measured shapes" when families were measured and none is near, else
the regime's; a family's band is never narrower than its regime's (a family of three runs has a
small-sample bound); and it names the parts of the plan that no validation run exercised
(:func:`unvalidated_components`, all-reduces over group sizes never measured included): those never
borrow another regime's band.

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
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from topology.cluster import Cluster
from topology.errors import LayerwiseError, reading
from topology.plan import Plan

REGIMES = ("decode-graph", "decode-eager", "prefill")
COVERAGE = 0.9  # a band's bound covers at least this share of held-out errors
# log distance (shape_features) within which a model borrows a measured family's band: chosen on the
# 1 x H200 shape study's nested check (validate.coverage), 0.75 / 1.0 / 1.25 banding 80 / 98 / 112 of
# 123 held-out runs with 94 / 95 / 94% inside their bands
NEAR_SHAPE = 1.0
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
    bound: float = math.nan  # the 90% bound (COVERAGE); nan in bands written before it existed: ``worst`` stands in
    family: str = ""  # the shape family these runs were (held out as), "" for all of the regime's runs
    shapes: tuple[tuple[float, ...], ...] = ()  # the family's layer shapes (shape_features)
    tp_sizes: tuple[int, ...] = ()  # all-reduce group sizes the runs exercised

    @property
    def half_width(self) -> float:
        """The band's half width as a fraction: its 90% bound (or its worst error where none was recorded)."""
        return self.worst if math.isnan(self.bound) else self.bound

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
        raw = asdict(self)
        if math.isnan(self.bound):  # JSON has no NaN: a band without a bound writes null
            raw["bound"] = None
        return raw


def regime_error_from_dict(raw: dict[str, Any]) -> RegimeError:
    with reading("validation"):
        return RegimeError(
            regime=str(raw["regime"]), gpu=str(raw["gpu"]), runs=int(raw["runs"]),
            configurations=int(raw["configurations"]), mape=float(raw["mape"]), worst=float(raw["worst"]),
            components=tuple(str(c) for c in raw["components"]), hosts=int(raw.get("hosts", 1)),
            source=str(raw.get("source", "")),
            bound=float(raw["bound"]) if raw.get("bound") is not None else math.nan,
            family=str(raw.get("family", "")),
            shapes=tuple(tuple(float(x) for x in shape) for shape in raw.get("shapes", ())),
            tp_sizes=tuple(int(n) for n in raw.get("tp_sizes", ())),
        )


def coverage_bound(errors: list[float]) -> float:
    """The split-conformal bound of |errors|: at least COVERAGE of errors like these fall inside it."""
    ordered = sorted(abs(e) for e in errors)
    rank = math.ceil(COVERAGE * (len(ordered) + 1))
    return ordered[min(rank, len(ordered)) - 1] if ordered else math.nan


def shape_features(model: Any) -> tuple[float, ...]:
    """A layer's shape as a family sees it (log), in the terms the kernel model prices it: query heads
    per KV head at half weight and head_dim (attention's shape, as :func:`sim.costs.measured.attention_features`
    weighs them: the number of KV heads only sets parallelism), hidden size, query width over hidden,
    MLP width over hidden, and a half for a gated MLP."""
    return (0.5 * math.log(model.num_heads / model.num_kv_heads), math.log(model.head_dim),
            math.log(model.hidden_size), math.log(model.q_width / model.hidden_size),
            math.log(model.mlp_hidden_size / model.hidden_size), 0.5 if model.gated_mlp else 0.0)


@dataclass(frozen=True)
class BandLookup:
    band: RegimeError | None
    note: str = ""  # why there is none ("outside measured shapes ...")


def band_for(validation: tuple[RegimeError, ...], regime: str, model: Any = None,
             components: tuple[str, ...] = ("kernels",)) -> BandLookup:
    """The band a prediction of ``regime`` carries (see the module docstring): for a plan with
    communication, the band of the runs that exercised it; otherwise the nearest measured family's
    (when ``model`` is given and families were measured), else the regime's."""
    mine = [e for e in validation if e.regime == regime]
    if not mine:
        return BandLookup(None)
    talks = set(components) - {"kernels"}
    covering = [e for e in mine if talks and talks <= set(e.components) and not e.family]
    if covering:
        return BandLookup(max(covering, key=lambda e: len(e.components)))
    # no run exercised its communication: its kernels' band, the rest named unvalidated
    families = [e for e in mine if e.family and e.shapes]
    if families and model is not None:
        here = shape_features(model)
        distance, nearest = min((math.dist(here, shape), e.family) for e in families for shape in e.shapes)
        if distance > NEAR_SHAPE:
            return BandLookup(None, f"outside measured shapes (the nearest family, {nearest}, is {distance:.2f} "
                                    f"away in log shape; within {NEAR_SHAPE} borrows a band)")
        family = next(e for e in families if e.family == nearest)
        whole = [e for e in mine if not e.family and not set(e.components) - {"kernels"}]
        if whole and whole[0].bound > family.bound:  # a family never promises less than its regime
            return BandLookup(replace(family, bound=whole[0].bound))
        return BandLookup(family)
    whole = [e for e in mine if not e.family and not set(e.components) - {"kernels"}]
    return BandLookup(whole[0] if whole else mine[0])


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


def unvalidated_components(components: tuple[str, ...], band: RegimeError | None,
                           tp_sizes: tuple[int, ...] = ()) -> tuple[str, ...]:
    """The plan's components that the band's runs never exercised (all of them without a band); an
    all-reduce over a group size the runs never measured (``tp_sizes``: the plan's) counts as never
    exercised."""
    covered = set(band.components) if band is not None else set()
    if band is not None and band.tp_sizes and not set(tp_sizes) <= set(band.tp_sizes):
        covered.discard("allreduce")
    return tuple(c for c in components if c not in covered)


def plan_tp_sizes(plan: Plan) -> tuple[int, ...]:
    """The all-reduce group sizes a plan uses (TP degrees above 1)."""
    return tuple(sorted({s.tp_degree for s in plan.stages if s.tp_degree > 1}))


def describe_band(band: RegimeError | None, unvalidated: tuple[str, ...]) -> str:
    """One phrase: what a prediction's error band is, and what it does not cover."""
    missing = ", ".join(COMPONENT_WORDS[c] for c in unvalidated)
    if band is None:
        return f"no validation band; unvalidated: {missing}" if missing else "no validation band"
    family = f", family {band.family}" if band.family else ""
    text = (f"±{band.half_width:.1%} (90% of held-out {band.regime} errors{family} on {band.gpu}, "
            f"{band.runs} runs, MAPE {band.mape:.1%}, worst {band.worst:.1%})")
    return f"{text}; unvalidated: {missing}" if missing else text
