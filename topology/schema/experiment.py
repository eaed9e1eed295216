"""The experiment file's schema, as editors see it (``schemas/experiment.schema.json``).

The loader (``topology/experiment.py``) checks the same rules field by field with messages that name
the experiment's own terms; this model states them for an editor's YAML language server and is
checked against every shipped experiment (tests/hardening/test_schemas.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from topology.schema.fields import Count, Finite, Flag, Index, Name, NonNegative, Positive, Text
from topology.schema.model import ModelFile

Seed = Annotated[int, Field(strict=True, ge=0, lt=2**63)]  # torch.Generator takes a signed 64-bit seed


class ClusterFile(BaseModel):
    """A homogeneous cluster: ``nodes`` x ``gpus_per_node`` GPUs of one kind (a GPU and link preset name)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Text | None = None
    nodes: Count
    gpus_per_node: Count
    gpu: Name
    intra_node_link: Name
    inter_node_link: Name | None = None


class WorkloadFile(BaseModel):
    """What runs: phase, batch, lengths (tokens), and how many iterations are measured."""

    model_config = ConfigDict(extra="forbid")

    phase: Literal["prefill", "decode"]
    batch_size: Count
    prompt_len: Count | None = None
    context_len: Count | None = None
    context_growth: Literal["fixed", "grow"] = "fixed"
    cuda_graphs: Flag = True
    warmup_iters: Index = 100
    measured_iters: Count = 1000
    seed: Seed = 0


class PoissonArrivalsFile(BaseModel):
    """Exponential gaps of mean 1/rate."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["poisson"]
    rate_per_s: Positive


class GammaArrivalsFile(BaseModel):
    """Gamma gaps of mean 1/rate and coefficient of variation ``cv``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["gamma"]
    rate_per_s: Positive
    cv: Positive


class ClosedLoopArrivalsFile(BaseModel):
    """``users`` users, each sending its next request ``think_time_s`` after its last one ended."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["closed_loop"]
    users: Count
    think_time_s: NonNegative = 0.0


class TraceArrivalsFile(BaseModel):
    """The workload's trace's arrival times divided by ``speedup``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["trace"]
    speedup: Positive = 1.0


class FixedLengthsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["fixed"]
    tokens: Count


class UniformLengthsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["uniform"]
    low_tokens: Count
    high_tokens: Count

    @model_validator(mode="after")
    def _ordered(self) -> UniformLengthsFile:
        if self.high_tokens < self.low_tokens:
            raise ValueError(f"high_tokens {self.high_tokens} is below low_tokens {self.low_tokens}")
        return self


class NormalLengthsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["normal"]
    mean_tokens: Positive
    std_tokens: NonNegative


class LognormalLengthsFile(BaseModel):
    """``exp(N(mu, sigma))``; give ``median_tokens`` (= exp(mu)) or ``mu``, not both."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["lognormal"]
    median_tokens: Positive | None = None
    mu: Finite | None = None
    sigma: NonNegative

    @model_validator(mode="after")
    def _one_centre(self) -> LognormalLengthsFile:
        if (self.median_tokens is None) == (self.mu is None):
            raise ValueError("give exactly one of median_tokens and mu")
        return self


class HistogramLengthsFile(BaseModel):
    """A bin with probability proportional to its weight, then a length uniform in [edge_i, edge_i+1)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["histogram"]
    edges_tokens: list[Count] = Field(min_length=2)
    weights: list[NonNegative]

    @model_validator(mode="after")
    def _bins(self) -> HistogramLengthsFile:
        if any(b <= a for a, b in zip(self.edges_tokens, self.edges_tokens[1:], strict=False)):
            raise ValueError("edges_tokens must be strictly increasing")
        if len(self.weights) != len(self.edges_tokens) - 1:
            raise ValueError(f"weights must be {len(self.edges_tokens) - 1} (one per bin)")
        if sum(self.weights) <= 0.0:
            raise ValueError("weights must not all be zero")
        return self


class TraceLengthsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["trace"]


Arrivals = Annotated[PoissonArrivalsFile | GammaArrivalsFile | ClosedLoopArrivalsFile | TraceArrivalsFile,
                     Field(discriminator="kind")]
Lengths = Annotated[FixedLengthsFile | UniformLengthsFile | NormalLengthsFile | LognormalLengthsFile
                    | HistogramLengthsFile | TraceLengthsFile, Field(discriminator="kind")]


class TraceFile(BaseModel):
    """A request trace (CSV or JSON lines); a relative path is read from the experiment file's folder."""

    model_config = ConfigDict(extra="forbid")

    path: Name
    format: Literal["auto", "simple", "azure", "burstgpt"] = "auto"


class ServingWorkloadFile(BaseModel):
    """A serving workload (``phase: serve``): how requests arrive, their prompt and output lengths (tokens),
    how many (``num_requests``) or for how long (``duration_s``), and the seed that fixes them all."""

    model_config = ConfigDict(extra="forbid")

    phase: Literal["serve"]
    seed: Seed = 0
    num_requests: Count | None = None
    duration_s: Positive | None = None
    arrivals: Arrivals
    prompt_tokens: Lengths
    output_tokens: Lengths
    trace: TraceFile | None = None

    @model_validator(mode="after")
    def _count_or_window(self) -> ServingWorkloadFile:
        if self.num_requests is not None and self.duration_s is not None:
            raise ValueError("give num_requests or duration_s, not both")
        replay = isinstance(self.arrivals, TraceArrivalsFile)
        if self.num_requests is None and self.duration_s is None and not replay:
            raise ValueError("give num_requests or duration_s")
        uses_trace = any(spec.kind == "trace" for spec in (self.arrivals, self.prompt_tokens, self.output_tokens))
        if uses_trace and self.trace is None:
            raise ValueError("a 'trace' kind needs workload.trace")
        return self


class SchedulerFile(BaseModel):
    """The serving iteration scheduler (``serving/scheduler_config.py``); ``auto`` sizes from the GPU."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["vllm", "prefill-first", "static"] = "vllm"
    max_num_batched_tokens: Count | None = None
    max_num_seqs: Count | None = None
    block_size_tokens: Count = 16
    num_blocks: Count | Literal["auto"] = "auto"
    gpu_memory_utilization: Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)] = 0.9
    max_model_len_tokens: Count | None = None
    cuda_graph_sizes: list[Count] | Literal["auto"] = "auto"
    reserve_full_prompt: Flag = False


class ServingFile(BaseModel):
    """Replicas of the plan and how requests are routed among them."""

    model_config = ConfigDict(extra="forbid")

    replicas: Count = 1
    router: Literal["round_robin", "least_outstanding", "least_kv"] = "round_robin"


Percentiles = Annotated[dict[Literal["p50", "p90", "p99"], Positive], Field(min_length=1)]


class PlanSpecFile(BaseModel):
    """One named plan: a partitioner and its arguments, or ``file:`` a saved plan."""

    model_config = ConfigDict(extra="forbid")

    partitioner: Literal["tp-pp", "cache-fit", "min-max-bytes", "optimal"] | None = None
    file: Text | None = None
    tp: Count | None = None
    pp: Count | None = None
    microbatches: Count | None = None
    capacity: Literal["l2", "sram", "l2+sram"] | Count | None = None
    counts: Literal["weights", "weights+kv", "weights+kv+activations"] | None = None
    num_devices: Count | None = None
    max_devices: Count | None = None
    gpus: Count | None = None
    top: Count | None = None
    max_tpot_ms: Positive | None = None
    max_ttft_ms: Positive | None = None
    family: Literal["all", "tp-pp", "layer-wise"] | None = None


class ExperimentFile(BaseModel):
    """A layerwise experiment: a model, a cluster, a workload and one or more plans."""

    model_config = ConfigDict(extra="forbid", title="layerwise experiment")

    name: Name | None = None
    description: Text | None = None
    model: Name | ModelFile
    cluster: Name | ClusterFile
    workload: Annotated[WorkloadFile | ServingWorkloadFile, Field(discriminator="phase")]
    plan: PlanSpecFile | None = None
    plans: dict[str, PlanSpecFile] | None = None
    profile: Text | None = None
    paper_claims_tokens_per_s: dict[str, Positive] = {}
    paper_claims_events_per_batch: dict[str, Positive] = {}
    scheduler: SchedulerFile | None = None
    slo: dict[Literal["ttft", "tpot", "e2e", "itl"], Percentiles] | None = None
    serving: ServingFile | None = None

    @model_validator(mode="after")
    def _serving_sections(self) -> ExperimentFile:
        if not isinstance(self.workload, ServingWorkloadFile):
            for section in ("scheduler", "slo", "serving"):
                if getattr(self, section) is not None:
                    raise ValueError(f"{section} is for a serving workload (workload.phase: serve) only")
        return self
