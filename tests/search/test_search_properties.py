"""The search is never worse than the partitioners' plans, and every answer meets its limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from search_cases import mini_experiment

from sim.inputs import basis_of, given_profile
from sim.resolve import resolve_given
from sim.search.options import SearchOptions
from sim.search.plan_search import search_plans
from sim.simulate import estimate
from topology.errors import LayerwiseError
from topology.experiment import experiment_from_dict
from topology.partition import partition_cache_fit, partition_tp_pp


@st.composite
def experiments(draw):  # type: ignore[no-untyped-def]
    kv_heads = draw(st.sampled_from([1, 2, 4]))
    heads = kv_heads * draw(st.sampled_from([1, 2, 4]))
    model = {"name": "random", "num_layers": draw(st.integers(1, 6)), "hidden_size": 64 * heads,
             "num_heads": heads, "num_kv_heads": kv_heads, "head_dim": 64,
             "mlp_hidden_size": 64 * heads * draw(st.sampled_from([2, 4])), "gated_mlp": draw(st.booleans()),
             "vocab_size": 1000, "dtype_bytes": 2}
    nodes, per_node = draw(st.sampled_from([(1, 2), (1, 4), (2, 2), (2, 4)]))
    phase = draw(st.sampled_from(["decode", "prefill"]))
    workload = {"phase": phase, "batch_size": draw(st.sampled_from([1, 2, 4, 8])),
                "context_len": draw(st.sampled_from([128, 2048])), "cuda_graphs": draw(st.booleans()),
                "warmup_iters": 1, "measured_iters": 2}
    return experiment_from_dict({
        "name": "random", "model": model,
        "cluster": {"name": "c", "nodes": nodes, "gpus_per_node": per_node, "gpu": "h100-sxm",
                    "intra_node_link": "nvlink4", "inter_node_link": "ib-ndr-400"},
        "workload": workload, "plans": {"one": {"partitioner": "tp-pp", "tp": 1, "pp": 1}}})


def _rivals(experiment):  # type: ignore[no-untyped-def]
    """Every tp-pp plan (TP, PP, microbatches) and cache-fit plan (capacities) that can be built."""
    m, c, w = experiment.model, experiment.cluster, experiment.workload
    mbs = [d for d in range(1, w.batch_size + 1) if w.batch_size % d == 0]
    for tp in (1, 2, 4):
        for pp in range(1, m.num_layers + 1):
            for mb in mbs:
                try:
                    yield partition_tp_pp(m, c, w, tp=tp, pp=pp, microbatches=mb)
                except LayerwiseError:
                    continue
    for capacity in ("l2", 1, 10**8, 10**9):
        for mb in mbs:
            try:
                yield partition_cache_fit(m, c, w, capacity=capacity, microbatches=mb)
            except LayerwiseError:
                continue


@settings(max_examples=25, deadline=None)
@given(experiment=experiments())
def test_never_worse_than_a_tp_pp_or_cache_fit_plan(experiment) -> None:  # type: ignore[no-untyped-def]
    result = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(top_k=3))
    best_twin = min(c.scored.step_s for c in result.ranked)
    for rival in _rivals(experiment):
        step = estimate(resolve_given(experiment, rival, None)).metrics.step_time_s
        assert best_twin <= step * (1 + 1e-12), rival.describe()
    assert result.best.prediction.tokens_per_s >= max(c.prediction.tokens_per_s for c in result.ranked)


def test_the_experiments_own_plans_are_finalists() -> None:
    experiment = mini_experiment("decode-2x2-graphs", plans={
        "odd": {"partitioner": "tp-pp", "tp": 1, "pp": 4, "microbatches": 1}})
    result = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(top_k=2))
    own = [c for c in result.ranked if "experiment: odd" in c.origin]
    assert len(own) == 1 and own[0].events is not None
    assert result.best.prediction.tokens_per_s >= own[0].prediction.tokens_per_s


def test_a_tpot_limit_holds_and_binds() -> None:
    experiment = mini_experiment("decode-2x2-graphs")
    free = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(top_k=5))
    # a limit between the best plan's TPOT and the worst finalist's
    tpots = sorted(c.prediction.tpot_s for c in free.ranked)  # type: ignore[type-var]
    limit = (tpots[0] + tpots[1]) / 2
    limited = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(top_k=5, max_tpot_s=limit))
    assert all(c.prediction.tpot_s <= limit for c in limited.ranked)  # type: ignore[operator]
    assert limited.best.layout == free.best.layout
    with pytest.raises(LayerwiseError, match="no plan of mini on the first 4 GPUs"):
        search_plans(basis_of(experiment, given_profile(None)), SearchOptions(max_tpot_s=tpots[0] / 10))


def test_a_gpu_limit_and_a_ttft_limit_hold() -> None:
    experiment = mini_experiment("prefill-2x2")
    free = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(top_k=5))
    assert free.best.gpus == 4
    two = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(top_k=5, gpus=2))
    assert all(c.gpus <= 2 and max(int(d[3:]) for d in c.plan.devices) < 2 for c in two.ranked)
    ttfts = sorted(c.prediction.ttft_s for c in free.ranked)  # type: ignore[type-var]
    limited = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(top_k=5, max_ttft_s=ttfts[1]))
    assert all(c.prediction.ttft_s <= ttfts[1] for c in limited.ranked)  # type: ignore[operator]


def test_the_layer_wise_family_uses_tp_1_only() -> None:
    experiment = mini_experiment("decode-1x4-eager")
    result = search_plans(basis_of(experiment, given_profile(None)), SearchOptions(family="layer-wise"))
    assert all(set(c.layout.tp_degrees) == {1} for c in result.ranked if c.origin.startswith("search"))


@pytest.mark.parametrize(("options", "field"), [
    (SearchOptions(top_k=0), "--top"),
    (SearchOptions(gpus=9), "--gpus"),
    (SearchOptions(max_tpot_s=0.0), "--max-tpot-ms"),
    (SearchOptions(max_ttft_s=1.0), "--max-ttft-ms"),  # decode has no TTFT
    (SearchOptions(microbatches=3), "--microbatches"),
    (SearchOptions(family="zig-zag"), "--family"),
])
def test_bad_options_name_the_option(options: SearchOptions, field: str) -> None:
    with pytest.raises(LayerwiseError, match=f"^{field}"):
        search_plans(basis_of(mini_experiment("decode-2x2-graphs"), given_profile(None)), options)
