"""The experiment file's schema, as editors see it (``schemas/experiment.schema.json``).

The loader (``topology/experiment.py``) checks the same rules field by field with messages that name
the experiment's own terms; this model states them for an editor's YAML language server and is
checked against every shipped experiment (tests/hardening/test_schemas.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from topology.schema.fields import Count, Flag, Index, Name, Positive, Text
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
    workload: WorkloadFile
    plan: PlanSpecFile | None = None
    plans: dict[str, PlanSpecFile] | None = None
    profile: Text | None = None
    paper_claims_tokens_per_s: dict[str, Positive] = {}
    paper_claims_events_per_batch: dict[str, Positive] = {}
