"""Process groups built from the plan's stages, created identically (same order) on every rank.

One TP group per stage of TP > 1; one group per pipeline edge (stage s -> s + 1); and a
separate loop-back group (last stage -> stage 0) for decode, so the next token's traffic
never queues behind forward traffic on one communicator (the pipeline-ring deadlock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from executor.layout import RankLayout


@dataclass(frozen=True)
class StageGroups:
    tp: Any | None  # this stage's TP group (None at TP 1)
    recv_edge: Any | None  # edge (stage - 1 -> stage)
    send_edge: Any | None  # edge (stage -> stage + 1)
    loop: Any | None  # loop-back edge (last -> 0); None with one stage


def build_groups(layout: RankLayout, timeout_s: float) -> StageGroups:
    """Create every group (a collective call: all ranks, same order) and keep this rank's."""
    timeout = timedelta(seconds=timeout_s)
    stage_ranks = layout.stage_ranks
    tp_groups = [dist.new_group(list(ranks), timeout=timeout) if len(ranks) > 1 else None for ranks in stage_ranks]
    edges = [dist.new_group(list(stage_ranks[s] + stage_ranks[s + 1]), timeout=timeout)
             for s in range(len(stage_ranks) - 1)]
    loop = (dist.new_group(list(stage_ranks[-1] + stage_ranks[0]), timeout=timeout)
            if len(stage_ranks) > 1 else None)
    stage = layout.stage
    return StageGroups(
        tp=tp_groups[stage],
        recv_edge=edges[stage - 1] if stage > 0 else None,
        send_edge=edges[stage] if stage < len(edges) else None,
        loop=loop,
    )


def tp_allreduce(group: Any) -> Any:
    """An in-place sum over ``group`` that returns its argument (for :class:`executor.model.StageModel`)."""

    def allreduce(tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, group=group)
        return tensor

    return allreduce
