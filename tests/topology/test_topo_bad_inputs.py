"""Issue 13: inputs that raised a traceback, were wrongly accepted, or named the wrong field."""

from __future__ import annotations

from typing import Any

import pytest

from topology.errors import LayerwiseError
from topology.experiment import apply_overrides, experiment_from_dict, load_experiment
from topology.workload import Workload, workload_from_dict

TINY: dict[str, Any] = {
    "name": "tiny",
    "model": "tiny-test",
    "cluster": {"nodes": 1, "gpus_per_node": 4, "gpu": "h100-sxm", "intra_node_link": "nvlink4"},
    "workload": {"phase": "decode", "batch_size": 8, "context_len": 16, "warmup_iters": 0, "measured_iters": 1},
    "plans": {"a": {"partitioner": "tp-pp", "tp": 1, "pp": 2, "microbatches": 2}},
}


def error_of(fn: Any, *args: Any, **kwargs: Any) -> LayerwiseError:
    with pytest.raises(LayerwiseError) as info:
        fn(*args, **kwargs)
    return info.value


@pytest.mark.parametrize("partitioner", [
    {"partitioner": "tp-pp", "tp": 1, "pp": 2}, {"partitioner": "cache-fit"},
])  # optimal's arguments are the search's: tests/search/test_search_options.py
@pytest.mark.parametrize("microbatches", [0, -2])
def test_zero_or_negative_microbatches_is_named_not_a_zero_division(partitioner: dict[str, Any],
                                                                    microbatches: int) -> None:
    raw = {**TINY, "plans": {"a": {**partitioner, "microbatches": microbatches}}}
    err = error_of(experiment_from_dict, raw)  # refused as the file is read, before any plan is built
    assert err.field == "plans.a.microbatches" and f"got {microbatches}" in err.message


def test_token_shape_refuses_zero_microbatches_itself() -> None:
    workload = Workload(phase="decode", batch_size=8, prompt_len=4, context_len=4)
    assert error_of(workload.token_shape, 0).field == "plan.microbatches"


@pytest.mark.parametrize(("given", "field"), [
    ({"context_len": -5}, "workload.context_len"),  # prompt_len is defaulted from it: not named
    ({"prompt_len": -5}, "workload.prompt_len"),
    ({"context_len": 0, "prompt_len": 4}, "workload.context_len"),
    ({"context_len": "long"}, "workload.context_len"),
])
def test_a_bad_length_is_named_as_the_field_given(given: dict[str, Any], field: str) -> None:
    raw = {"phase": "decode", "batch_size": 8, **given}
    assert error_of(workload_from_dict, raw).field == field
    raw["phase"] = "prefill"
    assert error_of(workload_from_dict, raw).field == field


def test_decode_refuses_a_prompt_longer_than_its_context() -> None:
    err = error_of(workload_from_dict, {"phase": "decode", "batch_size": 8, "prompt_len": 20, "context_len": 16})
    assert err.field == "workload.prompt_len"
    assert "20 exceeds context_len 16" in err.message and "does not read prompt_len" in err.message
    # a prompt shorter than the context is the usual decode state; prefill reads prompt_len only
    decode = workload_from_dict({"phase": "decode", "batch_size": 8, "prompt_len": 8, "context_len": 16})
    assert decode.token_shape(1).context_len == 16
    prefill = workload_from_dict({"phase": "prefill", "batch_size": 8, "prompt_len": 20, "context_len": 16})
    assert prefill.token_shape(1).new_tokens == 20


def test_the_seed_context_can_be_changed_alone() -> None:
    experiment = load_experiment("seed-16xh100", ["workload.context_len=2048"])
    assert (experiment.workload.context_len, experiment.workload.prompt_len) == (2048, 2048)


def test_an_override_into_a_missing_plan_names_the_plans() -> None:
    err = error_of(apply_overrides, TINY, ["plans.b.microbatches=2"])
    assert err.field == "plans.b.microbatches" and "no plan 'b' to change (plans: a)" in err.message
    whole = apply_overrides(TINY, ["plans.b={partitioner: tp-pp, tp: 2, pp: 1}", "plans.a.microbatches=1"])
    assert whole["plans"]["b"] == {"partitioner": "tp-pp", "tp": 2, "pp": 1}
    assert whole["plans"]["a"]["microbatches"] == 1


def test_absurd_sizes_are_refused_not_left_to_run() -> None:
    # found by the fuzz (benchmarks/bench_fuzz.py): a million layers, or a million GPUs on a node, ran for minutes
    inline = {"num_layers": 10**6, "hidden_size": 64, "num_heads": 4, "num_kv_heads": 2, "head_dim": 16,
              "mlp_hidden_size": 128, "gated_mlp": True, "vocab_size": 256, "dtype_bytes": 4}
    err = error_of(experiment_from_dict, {**TINY, "model": inline})
    assert err.field == "model.num_layers" and "1,000,000 is more than this tool plans for (16,384" in err.message
    assert experiment_from_dict({**TINY, "model": {**inline, "num_layers": 1024}}).model.num_layers == 1024
    one_node = {"nodes": 1, "gpus_per_node": 10**6, "gpu": "h100-sxm", "intra_node_link": "nvlink4"}
    err = error_of(experiment_from_dict, {**TINY, "cluster": one_node})
    assert err.field == "cluster.gpus_per_node"
    assert "1,000,000 GPUs, more than this tool builds (131,072)" in err.message
    two_nodes = {**one_node, "nodes": 2, "gpus_per_node": 65_537, "inter_node_link": "ib-ndr-400"}
    assert error_of(experiment_from_dict, {**TINY, "cluster": two_nodes}).field == "cluster.nodes"
