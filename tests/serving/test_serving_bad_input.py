"""Every bad input of the serving layer is one LayerwiseError, on one line, naming its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from serving.kv_blocks import kv_blocks_from_memory
from serving.requests import RequestSpec
from serving.scheduler_config import SchedulerConfig, scheduler_config_from_dict
from serving.slo import Slo, slo_spec_from_dict
from serving.workload import serving_workload_from_dict
from topology.errors import LayerwiseError

DATA = Path(__file__).resolve().parents[1] / "data" / "serving"
GOOD = {"phase": "serve", "seed": 0, "num_requests": 10,
        "arrivals": {"kind": "poisson", "rate_per_s": 2.0},
        "prompt_tokens": {"kind": "fixed", "tokens": 16}, "output_tokens": {"kind": "fixed", "tokens": 4}}


def _set(path: str, value: Any) -> dict[str, Any]:
    """GOOD with ``path`` (dotted) set to ``value``; the value ``...`` deletes the key."""
    raw = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return raw


WORKLOADS = [
    (_set("arrivals.rate_per_s", 0), "workload.arrivals.rate_per_s"),
    (_set("arrivals.rate_per_s", -1.0), "workload.arrivals.rate_per_s"),
    (_set("arrivals.rate_per_s", float("nan")), "workload.arrivals.rate_per_s"),
    (_set("arrivals.rate_per_s", float("inf")), "workload.arrivals.rate_per_s"),
    (_set("arrivals.rate_per_s", "5"), "workload.arrivals.rate_per_s"),
    (_set("arrivals.rate_per_s", True), "workload.arrivals.rate_per_s"),
    (_set("arrivals.rate_per_s", ...), "workload.arrivals.rate_per_s"),
    (_set("arrivals", {"kind": "gamma", "rate_per_s": 1.0, "cv": 0}), "workload.arrivals.cv"),
    (_set("arrivals", {"kind": "gamma", "rate_per_s": 1.0, "cv": -2.0}), "workload.arrivals.cv"),
    (_set("arrivals", {"kind": "gamma", "rate_per_s": 1.0}), "workload.arrivals.cv"),
    (_set("arrivals", {"kind": "closed_loop", "users": 0}), "workload.arrivals.users"),
    (_set("arrivals", {"kind": "closed_loop", "users": 2, "think_time_s": -1}), "workload.arrivals.think_time_s"),
    (_set("arrivals", {"kind": "trace", "speedup": 0}), "workload.arrivals.speedup"),
    (_set("arrivals", {"kind": "trace"}), "workload.trace"),
    (_set("arrivals.kind", "uniform"), "workload.arrivals.kind"),
    (_set("arrivals", {"rate_per_s": 1.0}), "workload.arrivals.kind"),
    (_set("arrivals", [1.0]), "workload.arrivals"),
    (_set("arrivals.burstiness", 1.0), "workload.arrivals"),
    (_set("arrivals", ...), "workload.arrivals"),
    (_set("num_requests", 0), "workload.num_requests"),
    (_set("num_requests", 2.5), "workload.num_requests"),
    (_set("num_requests", ...), "workload.num_requests"),
    (_set("duration_s", 60.0), "workload.duration_s"),
    ({**_set("num_requests", ...), "duration_s": 0.0}, "workload.duration_s"),
    (_set("seed", -1), "workload.seed"),
    (_set("seed", 2**63), "workload.seed"),
    (_set("phase", "decode"), "workload.phase"),
    (_set("rate_per_s", 2.0), "workload"),
    (_set("prompt_tokens", ...), "workload.prompt_tokens"),
    (_set("prompt_tokens.kind", "zipf"), "workload.prompt_tokens.kind"),
    (_set("prompt_tokens.tokens", 0), "workload.prompt_tokens.tokens"),
    (_set("output_tokens", {"kind": "uniform", "low_tokens": 8, "high_tokens": 4}),
     "workload.output_tokens.high_tokens"),
    (_set("output_tokens", {"kind": "uniform", "low_tokens": 0, "high_tokens": 4}),
     "workload.output_tokens.low_tokens"),
    (_set("output_tokens", {"kind": "normal", "mean_tokens": 8, "std_tokens": -1}),
     "workload.output_tokens.std_tokens"),
    (_set("output_tokens", {"kind": "normal", "mean_tokens": 0, "std_tokens": 1}),
     "workload.output_tokens.mean_tokens"),
    (_set("output_tokens", {"kind": "lognormal", "median_tokens": 100, "mu": 4.6, "sigma": 1}),
     "workload.output_tokens.median_tokens"),
    (_set("output_tokens", {"kind": "lognormal", "sigma": 1}), "workload.output_tokens.median_tokens"),
    (_set("output_tokens", {"kind": "lognormal", "median_tokens": 0, "sigma": 1}),
     "workload.output_tokens.median_tokens"),
    (_set("output_tokens", {"kind": "lognormal", "mu": 4.0, "sigma": float("nan")}), "workload.output_tokens.sigma"),
    (_set("output_tokens", {"kind": "histogram", "edges_tokens": [1, 10], "weights": [1, 2]}),
     "workload.output_tokens.weights"),
    (_set("output_tokens", {"kind": "histogram", "edges_tokens": [10, 5, 20], "weights": [1, 2]}),
     "workload.output_tokens.edges_tokens"),
    (_set("output_tokens", {"kind": "histogram", "edges_tokens": [1, 5, 20], "weights": [0, 0]}),
     "workload.output_tokens.weights"),
    (_set("output_tokens", {"kind": "histogram", "edges_tokens": [0, 5], "weights": [1]}),
     "workload.output_tokens.edges_tokens[0]"),
    (_set("output_tokens", {"kind": "histogram", "edges_tokens": [1, 5], "weights": [-1]}),
     "workload.output_tokens.weights[0]"),
    (_set("output_tokens", {"kind": "trace"}), "workload.trace"),
    ({**GOOD, "trace": {"path": "absent.csv"}}, "workload.trace.path"),
    ({**GOOD, "trace": {"path": "simple.csv", "format": "sharegpt"}}, "workload.trace.format"),
    ({**GOOD, "trace": {"file": "simple.csv"}}, "workload.trace"),
    ({**GOOD, "num_requests": 37, "trace": {"path": "simple.csv"}}, "workload.num_requests"),
]


@pytest.mark.parametrize("raw, field", WORKLOADS, ids=[f"{i}-{case[1]}" for i, case in enumerate(WORKLOADS)])
def test_bad_workloads(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(LayerwiseError) as caught:
        serving_workload_from_dict(raw, base_dir=DATA)
    assert caught.value.field == field, caught.value
    assert "\n" not in str(caught.value)


def test_the_good_workload_is_good() -> None:
    assert serving_workload_from_dict(GOOD).num_requests == 10


SCHEDULER = {"policy": "vllm", "max_num_batched_tokens": 2048, "max_num_seqs": 64, "block_size_tokens": 16,
             "num_blocks": 1000, "max_model_len_tokens": 4096}
SCHEDULERS = [
    ({"policy": "fcfs"}, "scheduler.policy"),
    ({"max_num_batched_tokens": 0}, "scheduler.max_num_batched_tokens"),
    ({"max_num_seqs": 1.5}, "scheduler.max_num_seqs"),
    ({"block_size_tokens": -16}, "scheduler.block_size_tokens"),
    ({"num_blocks": 0}, "scheduler.num_blocks"),
    ({"max_model_len_tokens": None}, "scheduler.max_model_len_tokens"),
    ({"policy": "prefill-first"}, "scheduler.max_num_batched_tokens"),  # 2048 < 4096: a prompt must fit
    ({"policy": "static"}, "scheduler.max_num_batched_tokens"),
    ({"cuda_graph_sizes": [1, 4, 2]}, "scheduler.cuda_graph_sizes"),
    ({"cuda_graph_sizes": [0, 4]}, "scheduler.cuda_graph_sizes[0]"),
    ({"cuda_graph_sizes": 8}, "scheduler.cuda_graph_sizes"),
    ({"reserve_full_prompt": "yes"}, "scheduler.reserve_full_prompt"),
    ({"watermark": 0.01}, "scheduler"),
]


@pytest.mark.parametrize("change, field", SCHEDULERS, ids=[case[1] + str(i) for i, case in enumerate(SCHEDULERS)])
def test_bad_scheduler_settings(change: dict[str, Any], field: str) -> None:
    with pytest.raises(LayerwiseError) as caught:
        scheduler_config_from_dict({**SCHEDULER, **change})
    assert caught.value.field == field, caught.value


def test_scheduler_settings_missing_a_field() -> None:
    raw = dict(SCHEDULER)
    del raw["num_blocks"]
    with pytest.raises(LayerwiseError, match=r"^scheduler.num_blocks: missing$"):
        scheduler_config_from_dict(raw)
    assert scheduler_config_from_dict({**SCHEDULER, "cuda_graph_sizes": [1, 2, 4]}) == SchedulerConfig(
        **{**SCHEDULER, "cuda_graph_sizes": (1, 2, 4)})


@pytest.mark.parametrize("raw, field", [
    ({"latency": {"p99": 1.0}}, "slo"),
    ({"ttft": {"p95": 1.0}}, "slo.ttft"),
    ({"ttft": {"p99": 0}}, "slo.ttft.p99"),
    ({"tpot": {"p50": float("nan")}}, "slo.tpot.p50"),
    ({"e2e": {}}, "slo.e2e"),
    ({"itl": 0.5}, "slo.itl"),
])
def test_bad_slos(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(LayerwiseError) as caught:
        slo_spec_from_dict(raw)
    assert caught.value.field == field, caught.value
    assert slo_spec_from_dict({"ttft": {"p99": 0.5, "p50": 0.2}}).slos[1] == Slo("ttft", "p50", 0.2)


@pytest.mark.parametrize("kwargs, field", [
    ({"hbm_bytes": -1.0}, "kv.hbm_bytes"),
    ({"weights_bytes": float("nan")}, "kv.weights_bytes"),
    ({"kv_bytes_per_token": 0}, "kv.kv_bytes_per_token"),
    ({"block_size_tokens": 0}, "kv.block_size_tokens"),
    ({"memory_utilization": 1.5}, "kv.memory_utilization"),
    ({"null_blocks": -1}, "kv.null_blocks"),
])
def test_bad_memory_arguments(kwargs: dict[str, Any], field: str) -> None:
    values = {"hbm_bytes": 80e9, "weights_bytes": 16e9, "activations_bytes": 4e9, "kv_bytes_per_token": 131072.0,
              "block_size_tokens": 16, **kwargs}
    with pytest.raises(LayerwiseError) as caught:
        kv_blocks_from_memory(**values)
    assert caught.value.field == field


@pytest.mark.parametrize("args, field", [
    ((0, -1.0, 4, 2), "request 0.arrival_s"),
    ((0, float("nan"), 4, 2), "request 0.arrival_s"),
    ((3, 0.0, 0, 2), "request 3.prompt_tokens"),
    ((3, 0.0, 4, 0), "request 3.output_tokens"),
    ((-1, 0.0, 4, 2), "request.request_id"),
])
def test_bad_requests(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(LayerwiseError) as caught:
        RequestSpec(*args)
    assert caught.value.field == field
