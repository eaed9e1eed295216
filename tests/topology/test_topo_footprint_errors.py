"""A plan over HBM names the input that made it so and the largest value that fits (issue 13).

Each largest value is checked by building the plan at it (fits) and one step beyond (does not).
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from topology.cluster import load_cluster
from topology.errors import LayerwiseError
from topology.model import ModelSpec, load_model
from topology.partition import partition_cache_fit, partition_tp_pp
from topology.workload import Workload

SEED_HBM_BYTES = 85_520_809_984  # gpus/h100-sxm.yaml


def largest_in(message: str, field: str) -> int:
    match = re.search(rf"the largest {field} that fits is ([\d,]+)", message)
    assert match, message
    return int(match.group(1).replace(",", ""))


def error_of(call, *args, **kwargs) -> LayerwiseError:  # type: ignore[no-untyped-def]
    with pytest.raises(LayerwiseError) as info:
        call(*args, **kwargs)
    return info.value


def test_a_context_too_long_names_the_context_and_its_largest_fitting_value(seed_model: ModelSpec) -> None:
    cluster = load_cluster("seed-16xh100")
    huge = Workload(phase="decode", batch_size=128, prompt_len=100_000_000, context_len=100_000_000)
    err = error_of(partition_tp_pp, seed_model, cluster, huge, tp=8, pp=2, microbatches=8)
    assert err.field == "workload.context_len"
    assert "HBM holds 85.5 GB" in err.message and "the largest batch_size that fits is none" in err.message
    best = largest_in(err.message, "context_len")
    # by hand: stage 0 holds 8 layers at TP8; its KV per token of context is
    # 8 layers x 128 sequences x 2 (K, V) x 4 heads x 128 dims x 2 bytes = 2,097,152 B,
    # and weights + activations take under 1 GB, so the context is a little under 85.52e9 / 2,097,152
    assert 40_000 < best < SEED_HBM_BYTES // 2_097_152 == 40_779
    fits = partition_tp_pp(seed_model, cluster, replace(huge, context_len=best, prompt_len=best), tp=8, pp=2,
                           microbatches=8)
    assert max(s.footprint.total_bytes for s in fits.stages) <= SEED_HBM_BYTES
    one_more = replace(huge, context_len=best + 1, prompt_len=best + 1)
    err = error_of(partition_tp_pp, seed_model, cluster, one_more, tp=8, pp=2, microbatches=8)
    assert err.field == "workload.batch_size"  # at this context a smaller batch would fit
    assert largest_in(err.message, "context_len") == best


def test_a_batch_too_large_names_the_batch_as_a_multiple_of_the_microbatches(seed_model: ModelSpec) -> None:
    cluster = load_cluster("seed-16xh100")
    huge = Workload(phase="decode", batch_size=100_000, prompt_len=10_000, context_len=10_000)
    err = error_of(partition_tp_pp, seed_model, cluster, huge, tp=8, pp=2, microbatches=8)
    assert err.field == "workload.batch_size" and "(a multiple of microbatches=8)" in err.message
    best = largest_in(err.message, "batch_size")
    assert best % 8 == 0
    partition_tp_pp(seed_model, cluster, replace(huge, batch_size=best), tp=8, pp=2, microbatches=8)
    assert error_of(partition_tp_pp, seed_model, cluster, replace(huge, batch_size=best + 8), tp=8, pp=2,
                    microbatches=8).field == "workload.batch_size"


def test_prefill_names_the_prompt(seed_model: ModelSpec) -> None:
    long = Workload(phase="prefill", batch_size=128, prompt_len=10_000_000, context_len=10_000_000)
    err = error_of(partition_tp_pp, seed_model, load_cluster("seed-16xh100"), long, tp=8, pp=2, microbatches=8)
    assert err.field == "workload.prompt_len" and largest_in(err.message, "prompt_len") > 0


def test_weights_alone_over_hbm_name_pp_and_the_smallest_pp() -> None:
    llama = load_model("llama3-70b")  # 80 layers of 1.7 GB: 137 GB on one device
    small = Workload(phase="decode", batch_size=1, prompt_len=1, context_len=1)
    err = error_of(partition_tp_pp, llama, load_cluster("h100x1"), small, tp=1, pp=1, microbatches=1)
    assert err.field == "pp" and "weights 136.9 GB" in err.message
    per_device = int(re.search(r"at most (\d+) layers at TP1", err.message).group(1))  # type: ignore[union-attr]
    layer_bytes = llama.weight_bytes_per_layer  # 1,711,308,800 B; KV and activations add under 1 MB
    assert per_device * layer_bytes < SEED_HBM_BYTES < (per_device + 1) * layer_bytes
    assert "pp must be at least 2" in err.message
    partition_tp_pp(llama, load_cluster("h100x2"), small, tp=1, pp=2, microbatches=1)


def test_cache_fit_capacity_over_hbm_names_the_largest_capacity() -> None:
    llama = load_model("llama3-70b")
    small = Workload(phase="decode", batch_size=1, prompt_len=1, context_len=1)
    two = load_cluster("h100x2")
    err = error_of(partition_cache_fit, llama, two, small, capacity=10**12)
    assert err.field == "capacity" and "(counting weights)" in err.message
    best = int(re.search(r"largest capacity that groups no more is ([\d,]+) B", err.message)  # type: ignore[union-attr]
               .group(1).replace(",", ""))
    plan = partition_cache_fit(llama, two, small, capacity=best)
    assert max(s.footprint.total_bytes for s in plan.stages) <= SEED_HBM_BYTES
    assert error_of(partition_cache_fit, llama, two, small, capacity=best + 1).field == "capacity"
