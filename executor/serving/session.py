"""Setting up a serving run on one rank, running it, and turning it into the shared record.

:func:`prepare_rank` builds what a rank serves with (attention path agreed by every rank, KV pages
sized for what the scheduler admits, decode graphs); :func:`serve` runs the loop (rank 0's engine,
the others follow) and returns rank 0's :class:`ServingResult`; :func:`serve_in_process` does both
for a one-device plan without torchrun (the calibration and the GPU study use it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from executor.checks import check_plan_shape
from executor.environment import collect_environment
from executor.layout import RankLayout, rank_layout
from executor.serving.attention import CPU_API, PAGED, AttentionSelection, choose_attention
from executor.serving.clock import RunClock
from executor.serving.engine import Engine, EngineStats
from executor.serving.graphs import DecodeGraphs
from executor.serving.inputs import TokenHistory
from executor.serving.pages import PagePool, pool_pages
from executor.serving.runner import RankServing
from executor.serving.stage import ServingStage, ServingWeights, StageShape, group_reduce, no_reduce
from executor.serving.transport import Links
from serving.driver import ServingRun
from serving.run_record import ServingRunRecord
from serving.scheduler_config import SchedulerConfig
from serving.setup import ServingSetup
from serving.sources import request_source
from topology.errors import LayerwiseError
from topology.plan import Plan

TIMING_METHOD = (
    "rank 0's host monotonic clock (time.monotonic_ns) from the run's start, stamped in whole 2^-20 s ticks, "
    "strictly increasing; an iteration ends when its sampled tokens are on rank 0's host (after a device "
    "synchronize); the scheduler runs at arrival instants, iteration ends and (pipelines) when the first stage "
    "is free, exactly as serving.driver; duration = end - start (pipelines: per stage, from the first stage's "
    "end on rank 0, the middle stages' own stamps and the tokens' arrival on rank 0), so serving.replay "
    "reproduces every batch")
SAMPLING = ("greedy over the whole vocabulary: RMS norm, a vocabulary-parallel output head (random weights), "
            "argmax; under TP an all-reduce MAX of the best logit then MIN of the token id")
HOST_COST = ("per iteration on rank 0: wall time from the scheduler call to the end stamp, less the forward "
             "(first kernel launch to device synchronize): scheduling, input preparation, copies, sampling "
             "bookkeeping")
MEMORY_MARGIN_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ServingOptions:
    """How to serve: the attention path (auto: the best that agrees with the reference), a deadline
    on the run's clock (None: none), how often an idle rank 0 tells the others it is alive, whether
    to warm up first."""

    attention: str = "auto"
    deadline_s: float | None = None
    heartbeat_s: float = 5.0
    warmup: bool = True


@dataclass(frozen=True)
class ServingResult:
    """Rank 0's outcome: the run, the record, rank 0's own timings, every request's tokens."""

    run: ServingRun
    record: ServingRunRecord
    stats: EngineStats
    generated: dict[int, list[int]] = field(default_factory=dict)


def check_serving_plan(setup: ServingSetup, plan: Plan, world_size: int) -> SchedulerConfig:
    """Refuse, before any process group, what the serving executor cannot run; the scheduler's settings."""
    if setup.replicas != 1:
        raise LayerwiseError("serving.replicas", f"the executor serves one replica (one plan's devices); got "
                                                 f"{setup.replicas} (the simulator models replicas)")
    check_plan_shape(plan, world_size)
    return setup.scheduler_for(plan)


def dtype_of(plan: Plan) -> torch.dtype:
    return torch.bfloat16 if plan.model.dtype_bytes == 2 else torch.float32


def stage_shape(plan: Plan, layout: RankLayout) -> StageShape:
    stage = plan.stages[layout.stage]
    return StageShape(stage.layers, stage.tp_degree, layout.tp_index, layout.is_first_stage, layout.is_last_stage)


def build_weights(plan: Plan, layout: RankLayout, seed: int, device: torch.device) -> ServingWeights:
    return ServingWeights(plan.model, stage_shape(plan, layout), seed, device, dtype_of(plan))


def graph_sizes(config: SchedulerConfig) -> tuple[int, ...]:
    """The captured sizes a decode batch can use: up to the first >= max_num_seqs."""
    sizes = []
    for size in config.cuda_graph_sizes:
        sizes.append(size)
        if size >= config.max_num_seqs:
            break
    return tuple(sizes)


Agree = Callable[[list[bool]], list[bool]]


def ctrl_agree(ctrl: Any | None) -> Agree:
    """Each flag true on every rank (an all-reduce MIN over the control group)."""

    def agree(flags: list[bool]) -> list[bool]:
        if ctrl is None or not flags:
            return flags
        tensor = torch.tensor([int(f) for f in flags], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN, group=ctrl)
        return [bool(v) for v in tensor.tolist()]

    return agree


@dataclass
class PreparedRank:
    """A rank ready to serve runs of one geometry (the pool and graphs depend on it alone)."""

    rank: RankServing
    selection: AttentionSelection
    num_pages: int
    setup_s: float
    geometry: tuple[object, ...] = ()

    def reset(self, config: SchedulerConfig) -> None:
        """Ready for another run: no request holds KV or tokens (the pages' contents do not matter)."""
        if geometry(config) != self.geometry:
            raise ValueError(f"a rank prepared for {self.geometry} cannot serve {geometry(config)}")
        rank = self.rank
        rank.pool = PagePool(self.num_pages, rank.pool.page_tokens)
        if rank.history is not None:
            rank.history = TokenHistory(rank.history.seed, rank.history.vocab_size)
        rank.graph_iterations = rank.eager_iterations = 0


def geometry(config: SchedulerConfig) -> tuple[object, ...]:
    """What a rank's KV pool and graphs are built for."""
    return (config.num_blocks, config.block_size_tokens, config.max_num_seqs, config.max_model_len_tokens,
            graph_sizes(config))


def prepare_rank(weights: ServingWeights, config: SchedulerConfig, links: Links, clock: RunClock,
                 options: ServingOptions, tp_group: Any | None) -> PreparedRank:
    """KV pages, attention path, graphs and peers for one rank (collective: every rank calls it)."""
    started = time.perf_counter()
    device, model = weights.device, weights.model
    agree = ctrl_agree(links.ctrl)
    selection = choose_attention(options.attention, device, weights.dtype, weights.heads_local,
                                 weights.kv_heads_local, model.head_dim, config.block_size_tokens, agree)
    page_tokens = selection.page_tokens
    num_pages = pool_pages(config.num_blocks, config.block_size_tokens, page_tokens, config.max_num_seqs)
    max_pages = -(-config.max_model_len_tokens // page_tokens)
    page_bytes = 2 * len(weights.shards) * page_tokens * weights.kv_heads_local * model.head_dim * \
        torch.empty(0, dtype=weights.dtype).element_size()
    if device.type == "cuda":
        free_bytes, _ = torch.cuda.mem_get_info(device)
        if num_pages * page_bytes + MEMORY_MARGIN_BYTES > free_bytes:
            raise LayerwiseError("scheduler.num_blocks", f"{config.num_blocks} blocks need {num_pages} KV pages of "
                                 f"{page_tokens} tokens ({num_pages * page_bytes / 1e9:.1f} GB on rank "
                                 f"{links.layout.rank}), but {free_bytes / 1e9:.1f} GB are free")
    if tp_group is not None:
        from executor.groups import tp_allreduce

        allreduce, reduce = tp_allreduce(tp_group), group_reduce(tp_group)
    else:
        allreduce, reduce = (lambda tensor: tensor), no_reduce
    stage = ServingStage(weights, selection, selection.api or CPU_API, num_pages, allreduce, reduce)
    graphs = None
    if device.type == "cuda" and selection.path == PAGED and config.cuda_graph_sizes:
        graphs = DecodeGraphs(stage, max_pages, config.max_model_len_tokens)
        sizes = graph_sizes(config)
        graphs.capture(sizes)
        captured = agree([size in graphs.graphs for size in sizes])
        graphs.keep_only({size for size, ok in zip(sizes, captured, strict=True) if ok})
    history = TokenHistory(weights.seed, model.vocab_size) if weights.shape.first else None
    rank = RankServing(stage, PagePool(num_pages, page_tokens), max_pages, graphs, links, clock, history)
    return PreparedRank(rank, selection, num_pages, time.perf_counter() - started, geometry(config))


def serve(setup: ServingSetup, plan: Plan, plan_name: str, config: SchedulerConfig, prepared: PreparedRank,
          options: ServingOptions, backend: str) -> ServingResult | None:
    """Serve the workload: rank 0 runs the engine and returns the result, the others follow (None)."""
    rank = prepared.rank
    layout = rank.links.layout
    if layout.rank != 0:
        rank.follow()
        return None
    engine = Engine(rank, config, request_source(setup.workload), rank.clock, options.heartbeat_s,
                    options.deadline_s)
    if options.warmup:  # a prefill as long as one iteration's budget allows, and a short one
        engine.warm_up(max(2, min(config.max_num_batched_tokens, config.max_model_len_tokens - 4,
                                  config.num_blocks * config.block_size_tokens // 4)))
    run = engine.run()
    environment = serving_environment(rank, prepared, engine.stats, backend, plan_name, setup)
    record = ServingRunRecord(source="measured", experiment=dict(setup.experiment.raw), plan=plan.to_dict(),
                              scheduler=config, run=run, router=setup.router, environment=environment)
    return ServingResult(run, record, engine.stats, engine.generated)


def _summary_s(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    array = np.asarray(values, dtype=np.float64)
    return {"count": len(values), "mean": float(array.mean()), "p50": float(np.percentile(array, 50)),
            "p90": float(np.percentile(array, 90)), "max": float(array.max())}


def serving_environment(rank: RankServing, prepared: PreparedRank, stats: EngineStats, backend: str, plan_name: str,
                        setup: ServingSetup) -> dict[str, Any]:
    """Where and how the run happened (rank 0's view; every rank runs the same choices)."""
    layout = rank.links.layout
    env = collect_environment(rank.device, backend, layout.world_size)
    graphs = rank.graphs
    graph_info: dict[str, Any] = {"captured_sizes": sorted(graphs.graphs) if graphs else [],
                                  "failures": {str(k): v for k, v in (graphs.failures if graphs else {}).items()},
                                  "replayed_iterations": rank.graph_iterations,
                                  "eager_iterations": rank.eager_iterations}
    if graphs is None:
        graph_info["note"] = ("no CUDA graphs: " + ("not on CUDA" if rank.device.type != "cuda" else
                              "the scheduler has no cuda_graph_sizes" if not setup.scheduler.cuda_graph_sizes else
                              f"attention path {prepared.selection.path} has per-batch shapes"))
    env["serving"] = {
        "experiment_name": setup.experiment.name, "plan_name": plan_name,
        "dtype": str(rank.stage.weights.dtype).replace("torch.", ""),
        "attention": prepared.selection.to_dict(),
        "kv_pages": {"page_tokens": rank.pool.page_tokens, "pages": prepared.num_pages,
                     "bytes_per_rank": rank.stage.kv_bytes},
        "cuda_graphs": graph_info, "sampling": SAMPLING, "timing": TIMING_METHOD,
        "host_cost": HOST_COST, "host_s_per_iteration": _summary_s(stats.host_s),
        "forward_s_per_iteration": _summary_s(stats.forward_s),
        "warmup_s": stats.warmup_s, "setup_s": prepared.setup_s,
    }
    return env


def prepare_in_process(setup: ServingSetup, plan: Plan, device: torch.device,
                       options: ServingOptions = ServingOptions(),
                       weights: ServingWeights | None = None) -> PreparedRank:
    """A one-device plan's rank, ready to serve (and to serve again: :meth:`PreparedRank.reset`)."""
    config = check_serving_plan(setup, plan, 1)
    layout = rank_layout(plan, 0)
    weights = weights or build_weights(plan, layout, setup.workload.seed, device)
    return prepare_rank(weights, config, Links(layout, None, None), RunClock(), options, None)


def serve_in_process(setup: ServingSetup, plan: Plan, plan_name: str, device: torch.device,
                     options: ServingOptions = ServingOptions(),
                     weights: ServingWeights | None = None, prepared: PreparedRank | None = None) -> ServingResult:
    """A one-device plan served in this process (no torchrun, no process group); ``prepared`` (from
    :func:`prepare_in_process`, same geometry) skips building the pool and capturing graphs again."""
    config = check_serving_plan(setup, plan, 1)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)  # as a torchrun rank (OMP_NUM_THREADS=1): no thread hand-offs per tiny op
    try:
        if prepared is None:
            prepared = prepare_in_process(setup, plan, device, options, weights)
        else:
            prepared.reset(config)
        result = serve(setup, plan, plan_name, config, prepared, options, "none (one process)")
    finally:
        torch.set_num_threads(threads)
    assert result is not None
    return result
