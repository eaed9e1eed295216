"""Small experiments whose whole search space can be simulated plan by plan."""

from __future__ import annotations

from typing import Any

from topology.experiment import Experiment, experiment_from_dict

MINI_MODEL = {"name": "mini", "num_layers": 4, "hidden_size": 4096, "num_heads": 32, "num_kv_heads": 8,
              "head_dim": 128, "mlp_hidden_size": 14336, "gated_mlp": True, "vocab_size": 1000, "dtype_bytes": 2}

CASES: dict[str, tuple[tuple[int, int], dict[str, Any]]] = {
    "decode-2x2-graphs": ((2, 2), {"phase": "decode", "batch_size": 16, "context_len": 8192, "cuda_graphs": True}),
    "decode-1x4-eager": ((1, 4), {"phase": "decode", "batch_size": 16, "context_len": 8192, "cuda_graphs": False}),
    "prefill-2x2": ((2, 2), {"phase": "prefill", "batch_size": 4, "prompt_len": 2048, "cuda_graphs": True}),
}


def mini_experiment(case: str, plans: dict[str, Any] | None = None) -> Experiment:
    (nodes, per_node), workload = CASES[case]
    return experiment_from_dict({
        "name": f"mini-{case}",
        "model": MINI_MODEL,
        "cluster": {"name": f"h100-{nodes}x{per_node}", "nodes": nodes, "gpus_per_node": per_node, "gpu": "h100-sxm",
                    "intra_node_link": "nvlink4", "inter_node_link": "ib-ndr-400"},
        "workload": {**workload, "warmup_iters": 2, "measured_iters": 4},
        "plans": plans or {"tp2pp2": {"partitioner": "tp-pp", "tp": 2, "pp": 2, "microbatches": 2}},
    })
