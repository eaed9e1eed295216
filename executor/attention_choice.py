"""Choose a run's attention paths by measuring them on the run's own shape, at start-up.

Decode: every candidate path (:func:`executor.attention.decode_candidates`) attends one new token
per sequence of a microbatch to this rank's KV cache as stored, layer after layer (each layer's
cache is its own buffer, so a burst streams from HBM as the run does), timed the way the run
runs (a CUDA graph when the run uses graphs). Prefill: every candidate on a random prompt of the
run's length, eager. Every rank measures; the per-path times are reduced to the slowest rank's
(a MAX over the world), so every rank picks the same path; the fastest wins
(:func:`executor.attention.pick_fastest`). A path given on the command line is used as is, and a
phase with one candidate (MHA prefill; MHA decode under a pinned SDPA kernel) is not measured.
Under ``--sdpa-backend flash|efficient|cudnn|math`` (a kernel study) only SDPA paths are
candidates. The choice, with the times, goes into the result's ``environment.attention``.

Cost: per candidate about ``REPEATS + 3`` bursts (warm-up, capture, timed) of at least
``MIN_DECODE_CALLS`` attention calls, or ``PREFILL_CALLS`` prefill calls; not yet timed on a GPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.distributed as dist

from executor.attention import (
    AUTO,
    AttentionChoice,
    AttentionPaths,
    decode_attention,
    decode_candidates,
    prefill_attention,
    prefill_candidates,
)
from executor.calibrate.attention import PathTimes, time_paths_s
from executor.calibrate.timing import Device
from executor.model import StageModel
from topology.errors import LayerwiseError
from topology.workload import Workload

REPEATS = 5  # timed bursts per candidate (median kept)
MIN_DECODE_CALLS = 8  # calls per decode burst: the stage's layers, cycled up to at least this many
PREFILL_CALLS = 2

ReduceMax = Callable[[list[float]], list[float]]


@dataclass(frozen=True)
class AttentionRequest:
    """What the command line asked for: ``auto`` (measure) or a path, per phase, and which option said so."""

    decode: str = AUTO
    prefill: str = AUTO
    decode_source: str = "--decode-attention"
    prefill_source: str = "--prefill-attention"
    sdpa_kernel: str | None = None  # a pinned SDPA kernel (--sdpa-backend flash, ...): measure SDPA paths only

    def decode_candidates(self, group_size: int) -> tuple[str, ...]:
        candidates = decode_candidates(group_size)
        return tuple(p for p in candidates if p != "matmul") if self.sdpa_kernel else candidates


def world_max(device: torch.device) -> ReduceMax:
    """Element-wise maximum over every rank of the default process group."""

    def reduce(values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return [float(v) for v in tensor.tolist()]

    return reduce


def _agreed(times: PathTimes, candidates: tuple[str, ...], reduce_max: ReduceMax | None) -> dict[str, float]:
    local = [times.times_s.get(path, math.inf) for path in candidates]
    slowest = reduce_max(local) if reduce_max is not None else local
    return {path: value for path, value in zip(candidates, slowest, strict=True) if math.isfinite(value)}


def _choose(phase: str, requested: str, source: str, candidates: tuple[str, ...], shape: dict[str, int],
            measure: Callable[[tuple[str, ...]], PathTimes], reduce_max: ReduceMax | None, note: str = ""
            ) -> AttentionChoice:
    if requested != AUTO:
        return AttentionChoice(phase, requested, f"forced by {source} {requested}", shape)
    if len(candidates) == 1:
        return AttentionChoice(phase, candidates[0], "only candidate", shape)
    started_s = time.perf_counter()
    times = measure(candidates)
    measuring_s = time.perf_counter() - started_s
    agreed = _agreed(times, candidates, reduce_max)
    chosen = PathTimes(agreed, times.errors).fastest(candidates)
    if chosen is None:
        errors = "; ".join(f"{path}: {error}" for path, error in times.errors.items()) or "no candidate ran"
        raise LayerwiseError(f"attention.{phase}", f"no attention path runs this shape ({errors})")
    return AttentionChoice(phase, chosen, f"measured at start-up (fastest on the slowest rank){note}", shape,
                           agreed, times.errors, measuring_s)


def _decode_times(model: StageModel, batch: int, device: Device, use_graphs: bool, generator: torch.Generator,
                  candidates: tuple[str, ...]) -> PathTimes:
    width = (model.heads_local + 2 * model.kv_heads_local) * model.head_dim
    qkv = torch.randn(batch, width, device=device.torch_device, dtype=device.dtype, generator=generator)
    q, _, _ = model.split_decode_qkv(qkv)  # (b, H/t, D), as the layer sees it
    caches = [model.decode_cache(local, 0, batch) for local in range(len(model.layers))]
    count = len(caches) * max(1, -(-MIN_DECODE_CALLS // len(caches)))
    calls = {path: [partial(decode_attention, path, q, *caches[i % len(caches)]) for i in range(count)]
             for path in candidates}
    return time_paths_s(calls, device, REPEATS, use_graph=use_graphs)


def _prefill_times(model: StageModel, batch: int, prompt_len: int, device: Device, generator: torch.Generator,
                   candidates: tuple[str, ...]) -> PathTimes:
    width = (model.heads_local + 2 * model.kv_heads_local) * model.head_dim
    qkv = torch.randn(batch, prompt_len, width, device=device.torch_device, dtype=device.dtype, generator=generator)
    q, k, v = model.split_prefill_qkv(qkv)  # (b, H/t, S, D), (b, K/t, S, D) x 2
    calls = {path: [partial(prefill_attention, path, q, k, v)] * PREFILL_CALLS for path in candidates}
    return time_paths_s(calls, device, REPEATS, use_graph=False)


def choose_attention(model: StageModel, workload: Workload, microbatch_size: int, prefill_len: int | None,
                     use_graphs: bool, request: AttentionRequest, reduce_max: ReduceMax | None,
                     seed: int = 0) -> tuple[AttentionChoice, ...]:
    """Measure (or take) the paths this rank runs, set them on ``model``, and return the choices.

    ``prefill_len``: the prompt a prefill runs (the workload's, or ``context_len - 1`` for a decode
    whose cache is filled by a prefill); None when the run has no prefill. Every rank must call this
    at the same point with the same arguments: the measured times are reduced over the world.
    """
    device = Device(model.device, model.dtype, 0)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    heads = {"heads": model.heads_local, "kv_heads": model.kv_heads_local, "head_dim": model.head_dim,
             "batch": microbatch_size}
    choices: list[AttentionChoice] = []
    prefill_path = model.paths.prefill
    if prefill_len is not None:
        prefill = _choose("prefill", request.prefill, request.prefill_source, prefill_candidates(model.group_size),
                          {**heads, "prompt_len": prefill_len},
                          lambda paths: _prefill_times(model, microbatch_size, prefill_len, device, generator, paths),
                          reduce_max)
        choices.append(prefill)
        prefill_path = prefill.path
    decode_path = model.paths.decode
    if workload.phase == "decode":
        if workload.context_growth == "fixed":
            model.set_fixed_position(workload.context_len - 1)
        else:
            model.set_position(workload.context_len - 1)
        note = f"; SDPA paths only: --sdpa-backend {request.sdpa_kernel}" if request.sdpa_kernel else ""
        decode = _choose("decode", request.decode, request.decode_source, request.decode_candidates(model.group_size),
                         {**heads, "context_len": workload.context_len},
                         lambda paths: _decode_times(model, microbatch_size, device, use_graphs, generator, paths),
                         reduce_max, note)
        choices.append(decode)
        decode_path = decode.path
    model.paths = AttentionPaths(decode=decode_path, prefill=prefill_path)
    if device.is_cuda:
        torch.cuda.synchronize(device.torch_device)
        torch.cuda.empty_cache()
    return tuple(choices)
