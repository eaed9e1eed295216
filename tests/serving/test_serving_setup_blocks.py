"""``num_blocks: auto``: the KV pool is what one GPU of each stage has left (hand-checked per-token
bytes: Llama-3-8B keeps 2 x 32 layers x 8 KV heads x 128 x 2 bytes = 131,072 bytes a token)."""

from __future__ import annotations

import math

from serving.setup import serving_setup_from_dict
from topology.experiment import build_plan
from topology.footprint import activation_peak_bytes
from topology.workload import Workload

RAW = {"model": "llama3-8b", "cluster": "h200x1",
       "workload": {"phase": "serve", "num_requests": 4, "arrivals": {"kind": "poisson", "rate_per_s": 1.0},
                    "prompt_tokens": {"kind": "fixed", "tokens": 100},
                    "output_tokens": {"kind": "fixed", "tokens": 10}},
       "plans": {"tp1": {"partitioner": "tp-pp", "tp": 1, "pp": 1}, "tp2": {"partitioner": "tp-pp", "tp": 2, "pp": 1}}}


def test_auto_blocks_fill_what_weights_and_activations_leave() -> None:
    setup = serving_setup_from_dict(RAW)
    plan = build_plan(setup.experiment, "tp1")
    hbm = setup.experiment.cluster.gpu.hbm_capacity_bytes
    budget = Workload(phase="prefill", batch_size=1, prompt_len=8192, context_len=1, warmup_iters=0, measured_iters=1)
    activations = activation_peak_bytes(plan.model, 1, budget, 1)
    left = 0.9 * hbm - plan.stages[0].footprint.weights_bytes - activations
    expected = math.floor(left / (131_072 * 16)) - 1
    assert setup.scheduler_for(plan).num_blocks == expected
    assert 50_000 < expected < 60_000  # ~121 GB of an H200's 141 GiB at 2 MiB a block
    tp2 = setup.scheduler_for(build_plan(serving_setup_from_dict({**RAW, "cluster": "h200x2"}).experiment, "tp2"))
    assert tp2.num_blocks > 2 * expected  # half the KV heads and half the weights per GPU
