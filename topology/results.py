"""The one results schema, written by the simulator (source "sim") and the executor
(source "hardware"), read by the validator. Every field is typed; version 2.

``step_time_s``: decode, the time for every sequence of the batch to get one more token
(one closed-loop round of all microbatches), in steady state; prefill, one forward pass of
the whole batch. ``tpot_s``: mean time between consecutive tokens of one sequence. A result
from the simulator carries :class:`SimulationDetails` (``metrics.simulation``), one from the
executor :class:`HardwareDetails` (``metrics.hardware``). Version 1 files (an untyped ``extra``
mapping and a ``paper_tpot_s`` field) still load: their ``extra`` is read into these types.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from topology.atomic_io import write_json_atomic
from topology.datafile import load_json_file
from topology.errors import LayerwiseError, reading
from topology.schema.check import field_name, validated
from topology.schema.result import ResultFile, result_model_problem

RESULT_SCHEMA_VERSION = 2
READABLE_RESULT_VERSIONS = (1, 2)
SOURCES = ("sim", "hardware")
BREAKDOWN_PARTS = ("compute", "weights", "kv_cache", "activations", "launch", "communication", "bubble")


@dataclass(frozen=True)
class StageMetrics:
    """Per-iteration means for one device of a stage."""

    stage: int
    devices: tuple[str, ...]
    compute_s: float  # kernels (GEMMs, attention, elementwise), launch costs included
    communication_s: float  # collectives and point-to-point time on this device
    idle_s: float  # waiting for input (bubbles)


@dataclass(frozen=True)
class Breakdown:
    """One step of the busiest device, by cause (seconds; the parts add up to the step)."""

    stage: int  # the stage of the busiest device
    compute_s: float  # compute-bound kernels
    weights_s: float  # memory-bound kernels, reading weights
    kv_cache_s: float  # ... reading and writing the KV cache
    activations_s: float  # ... moving activations
    launch_s: float  # kernel launches the GPU waits for
    communication_s: float  # collectives and sends no compute hides
    bubble_s: float  # waiting for input

    def seconds(self) -> dict[str, float]:
        """``{part: seconds}`` for the parts of :data:`BREAKDOWN_PARTS`."""
        return {part: getattr(self, f"{part}_s") for part in BREAKDOWN_PARTS}

    @property
    def dominant(self) -> str:
        parts = self.seconds()
        return max(BREAKDOWN_PARTS, key=lambda part: parts[part])


@dataclass(frozen=True)
class Communication:
    """Transfers per iteration (every microbatch through every stage), and bytes over the whole run."""

    collective_events_per_iteration: float
    collective_bytes_sent_per_iteration: float  # all ranks together
    p2p_transfers_per_iteration: float  # stage-to-stage sends (one per microbatch and boundary)
    loopback_transfers_per_iteration: float  # decode: last stage back to stage 0
    p2p_messages_per_iteration: float  # rank-level messages of those sends
    bytes_sent_total: float
    bytes_received_total: float

    @property
    def events_per_batch(self) -> float:
        """Collectives + stage-to-stage sends + loop-backs, per iteration."""
        return (self.collective_events_per_iteration + self.p2p_transfers_per_iteration
                + self.loopback_transfers_per_iteration)


@dataclass(frozen=True)
class StageResidency:
    """Whether a stage's weights stay in L2 between uses (the simulator's residency rule)."""

    stage: int
    weights_bytes: int  # the stage's weights on one device
    streamed_bytes_per_pass: int  # KV cache and activations one microbatch pass moves
    capacity_bytes: float  # usable L2 (plus shared memory where the plan counted it)
    sram_counted: bool
    hit_fraction: float  # share of weight reads L2 serves

    @property
    def fit(self) -> str:
        """``full``, ``partial`` or ``none``."""
        if self.hit_fraction >= 1.0:
            return "full"
        return "partial" if self.hit_fraction > 0.0 else "none"


@dataclass(frozen=True)
class DeviceUse:
    """One device's share of the step and its memory traffic per iteration."""

    device: str
    stage: int
    busy_fraction: float
    compute_fraction: float
    communication_fraction: float
    idle_fraction: float  # no host stalls are modelled: every idle second waits for input (a bubble)
    hbm_bytes_per_iteration: float
    l2_bytes_per_iteration: float
    l2_hit_fraction: float


@dataclass(frozen=True)
class SimulationDetails:
    """What the simulator adds to a result."""

    estimator: str  # "events" (the event simulation) or "twin" (the closed form)
    breakdown: Breakdown
    communication: Communication
    residency: tuple[StageResidency, ...]
    devices: tuple[DeviceUse, ...] = ()  # events only
    sim_params: dict[str, float] = field(default_factory=dict)  # the simulator's parameters by name
    simulated_iterations: int | None = None  # events: iterations run event by event ...
    skipped_iterations: int | None = None  # ... and skipped by the steady state
    simulated_events: float | None = None  # events every iteration would take, skipped ones included
    simulated_time_s: float | None = None  # the simulated clock at the end
    measured_window_s: float | None = None
    cycle_latency_s: float | None = None  # twin: one microbatch through every stage
    bubble_free_step_time_s: float | None = None  # twin: M x the slowest stage's occupancy

    @property
    def l2_fit(self) -> str:
        fits = [r.fit for r in self.residency]
        if all(f == "full" for f in fits):
            return "all stages fit"
        if all(f == "none" for f in fits):
            return "no stage fits"
        return f"{sum(f != 'none' for f in fits)} of {len(fits)} stages fit (fully or partly)"


@dataclass(frozen=True)
class RankTiming:
    """One executor rank's timings per measured iteration."""

    rank: int
    stage: int
    step_time_s: float
    forward_s: float
    input_wait_s: float
    allreduce_call_s: float  # one all-reduce, timed apart
    allreduces_per_iter: int
    setup_s: float = 0.0  # building the shard (weights, KV cache)


@dataclass(frozen=True)
class HardwareDetails:
    """What the executor adds to a result."""

    backend: str  # nccl or gloo
    cuda_graphs: bool  # whether the steps ran as CUDA-graph replays
    dtype: str
    kv_fill: str  # how the KV cache was filled (seeded, or by a prefill)
    kv_capacity_tokens: int
    sdpa_backend: str  # "auto", or the one attention kernel a kernel study forced
    communication_timing: str  # "graph-replay" or "eager": how the TP all-reduces were timed
    communication_note: str = ""
    ranks: tuple[RankTiming, ...] = ()
    trace_path: str | None = None  # the torch.profiler trace, where one was taken


@dataclass(frozen=True)
class Metrics:
    tokens_per_s: float
    step_time_s: float
    tpot_s: float | None
    ttft_s: float | None
    microbatches: int
    plan_label: str  # Plan.describe()
    stages: tuple[StageMetrics, ...] = ()
    simulation: SimulationDetails | None = None
    hardware: HardwareDetails | None = None

    @property
    def breakdown(self) -> Breakdown | None:
        return self.simulation.breakdown if self.simulation is not None else None


@dataclass(frozen=True)
class RunResult:
    source: str
    experiment: dict[str, Any]  # the resolved experiment (model, cluster, workload, ...)
    plan_name: str
    plan: dict[str, Any]  # Plan.to_dict()
    metrics: Metrics
    environment: dict[str, Any]
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = RESULT_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise LayerwiseError("result.source", f"must be one of {SOURCES}, got {self.source!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: Any, raw: dict[str, Any]) -> Any:
    """A dataclass from its dict, unknown keys ignored (missing ones raise KeyError via the constructor)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})


def _simulation_from_dict(raw: dict[str, Any]) -> SimulationDetails:
    return SimulationDetails(
        estimator=str(raw["estimator"]),
        breakdown=_build(Breakdown, raw["breakdown"]),
        communication=_build(Communication, raw["communication"]),
        residency=tuple(_build(StageResidency, r) for r in raw.get("residency", ())),
        devices=tuple(_build(DeviceUse, d) for d in raw.get("devices", ())),
        **{k: raw[k] for k in ("sim_params", "simulated_iterations", "skipped_iterations", "simulated_events",
                               "simulated_time_s", "measured_window_s", "cycle_latency_s",
                               "bubble_free_step_time_s") if k in raw},
    )


def _hardware_from_dict(raw: dict[str, Any]) -> HardwareDetails:
    values = {k: v for k, v in raw.items() if k in {f.name for f in fields(HardwareDetails)} and k != "ranks"}
    return HardwareDetails(**values, ranks=tuple(_build(RankTiming, r) for r in raw.get("ranks", ())))


def _hardware_from_v1(extra: dict[str, Any]) -> HardwareDetails | None:
    """The executor's record in a version 1 ``extra`` (None where the file is not the executor's)."""
    if "backend" not in extra:
        return None
    return HardwareDetails(
        backend=str(extra.get("backend", "")), cuda_graphs=bool(extra.get("cuda_graphs", False)),
        dtype=str(extra.get("dtype", "")), kv_fill=str(extra.get("kv_fill", "")),
        kv_capacity_tokens=int(extra.get("kv_capacity_tokens", 0)),
        sdpa_backend=str(extra.get("sdpa_backend", "auto")),
        communication_timing=str(extra.get("communication_timing", "eager (after the run)")),
        communication_note=str(extra.get("communication_note", "")),
        ranks=tuple(_build(RankTiming, r) for r in extra.get("ranks", ())),
        trace_path=extra.get("trace_path"),
    )


def _simulation_from_v1(extra: dict[str, Any]) -> SimulationDetails | None:
    parts = extra.get("step_breakdown_s")
    if not isinstance(parts, dict):
        return None
    comm = dict(extra.get("communication", {}))
    return SimulationDetails(
        estimator="twin" if extra.get("estimator") == "analytic" else "events",
        breakdown=Breakdown(stage=int(extra.get("breakdown_device_stage", 0)),
                            **{f"{part}_s": float(parts.get(part, 0.0)) for part in BREAKDOWN_PARTS}),
        communication=Communication(**{f.name: float(comm.get(f.name, 0.0)) for f in fields(Communication)}),
        residency=tuple(_build(StageResidency, r) for r in extra.get("l2", ())),
        sim_params=dict(extra.get("sim_params", {})),
    )


def metrics_from_dict(raw: dict[str, Any], version: int = RESULT_SCHEMA_VERSION, source: str = "sim") -> Metrics:
    stages = tuple(
        StageMetrics(
            stage=int(s["stage"]),
            devices=tuple(s["devices"]),
            compute_s=float(s["compute_s"]),
            communication_s=float(s["communication_s"]),
            idle_s=float(s["idle_s"]),
        )
        for s in raw.get("stages", ())
    )
    if version == 1:
        extra = dict(raw.get("extra", {}))
        simulation = _simulation_from_v1(extra) if source == "sim" else None
        hardware = _hardware_from_v1(extra) if source == "hardware" else None
        microbatches, label = int(extra.get("microbatches", 1)), str(extra.get("plan", ""))
    else:
        simulation = _simulation_from_dict(raw["simulation"]) if raw.get("simulation") else None
        hardware = _hardware_from_dict(raw["hardware"]) if raw.get("hardware") else None
        microbatches, label = int(raw["microbatches"]), str(raw["plan_label"])
    return Metrics(
        tokens_per_s=float(raw["tokens_per_s"]),
        step_time_s=float(raw["step_time_s"]),
        tpot_s=None if raw.get("tpot_s") is None else float(raw["tpot_s"]),
        ttft_s=None if raw.get("ttft_s") is None else float(raw["ttft_s"]),
        microbatches=microbatches,
        plan_label=label,
        stages=stages,
        simulation=simulation,
        hardware=hardware,
    )


def result_from_dict(raw: dict[str, Any], origin: str = "result") -> RunResult:
    """A result from its JSON form, checked first by its schema (:mod:`topology.schema.result`), with its
    plan and experiment naming the same model."""
    if not isinstance(raw, dict):
        raise LayerwiseError("result", f"must be a JSON object, got {type(raw).__name__}")
    version = raw.get("schema_version")
    if version not in READABLE_RESULT_VERSIONS:
        raise LayerwiseError(
            "result.schema_version", f"{version!r} is not one of the supported {READABLE_RESULT_VERSIONS}"
        )
    checked = validated(ResultFile, raw, origin, "result")
    problem = result_model_problem(checked.experiment, checked.plan)
    if problem is not None:
        raise LayerwiseError(field_name("result", origin, "plan.model"), problem)
    with reading("result"):
        return RunResult(
            source=str(raw["source"]),
            experiment=dict(raw["experiment"]),
            plan_name=str(raw["plan_name"]),
            plan=dict(raw["plan"]),
            metrics=_with_label(metrics_from_dict(raw["metrics"], int(version), str(raw["source"])), raw["plan"]),
            environment=dict(raw.get("environment", {})),
            created_utc=str(raw.get("created_utc", "")),
            schema_version=RESULT_SCHEMA_VERSION,  # a version 1 file reads as version 2
        )


def looks_like_result(raw: Any) -> bool:
    """A JSON value meant as a result (it has a source, metrics and a plan), whatever its other fields
    hold: a validator reads it as one (and says why not), where a profile or a trace beside it is skipped."""
    return isinstance(raw, dict) and {"source", "metrics", "plan"} <= set(raw)


def _with_label(metrics: Metrics, plan: dict[str, Any]) -> Metrics:
    """A version 1 hardware result recorded no plan label: it is the recorded plan's description."""
    if metrics.plan_label:
        return metrics
    from topology.plan import plan_from_dict  # the plan module builds on this one's neighbours, not on it

    return replace(metrics, plan_label=plan_from_dict(plan).describe())


def write_result(path: str | Path, result: RunResult) -> Path:
    return write_json_atomic(path, result.to_dict())


def load_result(path: str | Path) -> RunResult:
    return result_from_dict(load_json_file(path, "path"), str(path))
