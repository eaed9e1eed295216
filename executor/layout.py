"""Where each rank sits in a plan: its stage, its place in the TP group, its pipeline peers.

Pure (no torch): rank ``r`` is the ``r``-th device of ``plan.devices``. A stage's ranks form
its TP group. Between neighbouring stages, rank ``i`` of stage ``s + 1`` receives from rank
``i % tp_s`` of stage ``s`` (after the TP all-reduce every rank of a stage holds the whole
hidden state, so any of them can send it); the loop-back edge (last stage -> stage 0,
decode only) follows the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.errors import LayerwiseError
from topology.plan import Plan


@dataclass(frozen=True)
class RankLayout:
    """One rank's place in the plan; every rank number is a global (world) rank."""

    rank: int
    world_size: int
    device: str  # the plan's device name, e.g. "gpu3"
    stage: int
    num_stages: int
    tp_index: int  # position inside the stage's TP group
    stage_ranks: tuple[tuple[int, ...], ...]  # stage -> its ranks (its TP group)
    recv_from: int | None  # rank this rank receives the stage input from (None: stage 0 in prefill / pp=1)
    send_to: tuple[int, ...]  # ranks of the next stage this rank sends its output to
    loop_recv_from: int | None  # stage 0: the last-stage rank it receives the next token's input from
    loop_send_to: tuple[int, ...]  # last stage: stage-0 ranks it sends the next token's input to

    @property
    def tp_degree(self) -> int:
        return len(self.stage_ranks[self.stage])

    @property
    def is_first_stage(self) -> bool:
        return self.stage == 0

    @property
    def is_last_stage(self) -> bool:
        return self.stage == self.num_stages - 1

    def stage_of_rank(self, rank: int) -> int:
        for index, ranks in enumerate(self.stage_ranks):
            if rank in ranks:
                return index
        raise LayerwiseError("rank", f"rank {rank} is in no stage")

    def describe_rank(self, rank: int) -> str:
        return f"rank {rank} (stage {self.stage_of_rank(rank)})"


def stage_rank_groups(plan: Plan) -> tuple[tuple[int, ...], ...]:
    """Stage -> its global ranks, numbering devices in ``plan.devices`` order."""
    groups, offset = [], 0
    for stage in plan.stages:
        groups.append(tuple(range(offset, offset + stage.tp_degree)))
        offset += stage.tp_degree
    return tuple(groups)


def _senders_to(source: tuple[int, ...], target: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """Which target ranks each source rank sends to (target rank i <- source rank i % len(source))."""
    out: dict[int, list[int]] = {rank: [] for rank in source}
    for position, rank in enumerate(target):
        out[source[position % len(source)]].append(rank)
    return {rank: tuple(targets) for rank, targets in out.items()}


def rank_layout(plan: Plan, rank: int) -> RankLayout:
    """The layout of ``rank`` in ``plan`` (world size = ``plan.num_devices``)."""
    if not 0 <= rank < plan.num_devices:
        raise LayerwiseError("rank", f"rank {rank} is outside the plan's {plan.num_devices} devices")
    groups = stage_rank_groups(plan)
    stage = next(index for index, ranks in enumerate(groups) if rank in ranks)
    ranks = groups[stage]
    last = len(groups) - 1
    recv_from = None
    send_to: tuple[int, ...] = ()
    loop_recv_from = None
    loop_send_to: tuple[int, ...] = ()
    if stage > 0:
        previous = groups[stage - 1]
        recv_from = previous[ranks.index(rank) % len(previous)]
    if stage < last:
        send_to = _senders_to(ranks, groups[stage + 1])[rank]
    if last > 0 and stage == 0:
        loop_recv_from = groups[last][ranks.index(rank) % len(groups[last])]
    if last > 0 and stage == last:
        loop_send_to = _senders_to(ranks, groups[0])[rank]
    return RankLayout(
        rank=rank,
        world_size=plan.num_devices,
        device=plan.devices[rank],
        stage=stage,
        num_stages=len(groups),
        tp_index=ranks.index(rank),
        stage_ranks=groups,
        recv_from=recv_from,
        send_to=send_to,
        loop_recv_from=loop_recv_from,
        loop_send_to=loop_send_to,
    )
