"""Rank layout from a plan: stages, TP groups and pipeline peers (pure)."""

from __future__ import annotations

from executor.layout import rank_layout, stage_rank_groups
from topology.experiment import build_plan, load_experiment


def _plan(name: str):  # type: ignore[no-untyped-def]
    return build_plan(load_experiment("tiny-cpu"), name)


def test_tp2pp2_layout() -> None:
    plan = _plan("tp2pp2")
    assert stage_rank_groups(plan) == ((0, 1), (2, 3))
    r0, r1, r2, r3 = (rank_layout(plan, r) for r in range(4))
    assert (r0.stage, r0.tp_index, r0.send_to, r0.recv_from, r0.loop_recv_from) == (0, 0, (2,), None, 2)
    assert (r1.stage, r1.tp_index, r1.send_to, r1.loop_recv_from) == (0, 1, (3,), 3)
    assert (r2.stage, r2.recv_from, r2.loop_send_to, r2.send_to) == (1, 0, (0,), ())
    assert (r3.recv_from, r3.loop_send_to) == (1, (1,))
    assert r3.describe_rank(1) == "rank 1 (stage 0)"


def test_layer_wise_ring() -> None:
    plan = _plan("layer-wise")
    layouts = [rank_layout(plan, r) for r in range(4)]
    assert [lay.send_to for lay in layouts] == [(1,), (2,), (3,), ()]
    assert [lay.recv_from for lay in layouts] == [None, 0, 1, 2]
    assert layouts[0].loop_recv_from == 3 and layouts[3].loop_send_to == (0,)


def test_single_stage_has_no_peers() -> None:
    layout = rank_layout(_plan("tp2"), 1)
    assert (layout.num_stages, layout.tp_degree, layout.send_to, layout.loop_send_to) == (1, 2, (), ())
    assert layout.loop_recv_from is None
