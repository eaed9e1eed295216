"""A 2-GPU toy cluster and a tiny inline model whose costs can be worked by hand.

With the parameters of :func:`toy_profile` compute is free (peak FLOP/s 1e30), every byte
moves through HBM at 1e6 B/s (so 1 byte = 1 us), launches and the kernels' fixed latencies cost
nothing, no weight stays in L2 (usable L2 of 1 byte), and a link moves 8e6 B/s with 1 us latency.
"""

from __future__ import annotations

from typing import Any

from topology.experiment import Experiment, experiment_from_dict
from topology.profile import HardwareProfile, ProfileParams

TOY_MODEL = {"name": "toy", "num_layers": 2, "hidden_size": 4, "num_heads": 2, "num_kv_heads": 2, "head_dim": 2,
             "mlp_hidden_size": 8, "gated_mlp": False, "vocab_size": 16, "dtype_bytes": 2}
TOY_CLUSTER = {"name": "toy2", "nodes": 1, "gpus_per_node": 2, "gpu": "h100-sxm", "intra_node_link": "nvlink4"}
HAND_PARAMS = {
    "peak_flops_per_s": 1e30, "hbm_bw_bytes_per_s": 1e6, "hbm_read_bw_bytes_per_s": 1e6, "hbm_efficiency": 1.0,
    "l2_usable_bytes": 1.0,
    "launch_overhead_eager_s": 0.0, "launch_overhead_graph_s": 0.0, "intra_node_bw_bytes_per_s": 8e6,
    "link_efficiency": 1.0, "p2p_latency_s": 1e-6, "collective_latency_s": 1e-6,
    "gemm_latency_s": 0.0, "gemm_bw_efficiency": 1.0, "attention_latency_s": 0.0, "attention_bw_efficiency": 1.0,
    "norm_latency_s": 0.0, "elementwise_latency_s": 0.0, "kv_write_latency_s": 0.0,
    "collective_base_latency_s": 0.0, "tp_straggler_fraction": 0.0,
}


def toy_raw(plans: dict[str, Any], workload: dict[str, Any] | None = None,
            cluster: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "toy",
        "model": {**TOY_MODEL, **(model or {})},
        "cluster": dict(cluster or TOY_CLUSTER),
        "workload": {"phase": "decode", "batch_size": 1, "context_len": 4, "warmup_iters": 1, "measured_iters": 2,
                     "cuda_graphs": False, **(workload or {})},
        "plans": plans,
    }


def toy_profile(**overrides: float) -> HardwareProfile:
    # named for the toy cluster's GPU data file (h100-sxm): a profile of another GPU is refused
    return HardwareProfile(gpu_name="H100-SXM5-80GB", gpu_count=2,
                           params=ProfileParams(sim_params={**HAND_PARAMS, **overrides}))


def toy_experiment(plans: dict[str, Any], workload: dict[str, Any] | None = None,
                   cluster: dict[str, Any] | None = None, model: dict[str, Any] | None = None) -> Experiment:
    return experiment_from_dict(toy_raw(plans, workload, cluster, model))
