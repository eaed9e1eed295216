"""The host's cost per serving iteration: run the serving executor on a small model and measure, per
iteration, the wall time outside its forward.

An iteration of a serving engine is more than its kernels: the scheduler decides the batch, the
host lays out its inputs (slots, block tables, token ids) and copies them, and after the device is
done it takes the sampled tokens and does the bookkeeping. ``executor.serving`` stamps each
iteration from the scheduler call to the end of that bookkeeping and times the forward apart (first
launch to device synchronize); the difference is this cost (BLIS: leaving it out overstates
capacity by about 22%). The simulator adds it to every iteration as
``sim_params["serving_iteration_host_s"]`` (the mean over a run of varied batches); the raw section
also keeps its spread and a fit against the batch's sequence count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from executor.calibrate.timing import Device
from executor.serving.session import ServingOptions, serve_in_process
from serving.setup import serving_setup_from_dict
from topology.experiment import build_plan
from topology.hardware import gpu_preset_for_device

SIM_PARAM = "serving_iteration_host_s"
Progress = Callable[[str], None]


def host_cost_experiment(device: Device, quick: bool, seed: int) -> dict[str, Any]:
    """The serving run measured: a small model, Poisson arrivals, varied lengths, CUDA graphs on a GPU."""
    cluster = "h100x1"
    if device.is_cuda:
        preset = gpu_preset_for_device(torch.cuda.get_device_name(device.torch_device))
        cluster = f"{preset.split('-')[0]}x1" if preset else "h100x1"
    if device.is_cuda:  # enough iterations of every batch size up to 64
        requests, rate, prompt, output = (120 if quick else 300), 150.0, (32, 512), (16, 128)
    else:
        requests, rate, prompt, output = 12, 400.0, (4, 48), (2, 10)
    return {
        "name": "serving-host-cost",
        "model": "small-1024" if device.is_cuda else "tiny-test",
        "cluster": cluster,
        "workload": {"phase": "serve", "seed": seed, "num_requests": requests,
                     "arrivals": {"kind": "poisson", "rate_per_s": rate},
                     "prompt_tokens": {"kind": "uniform", "low_tokens": prompt[0], "high_tokens": prompt[1]},
                     "output_tokens": {"kind": "uniform", "low_tokens": output[0], "high_tokens": output[1]}},
        "scheduler": {"policy": "vllm", "max_num_batched_tokens": 2048 if device.is_cuda else 32,
                      "max_num_seqs": 64 if device.is_cuda else 6, "num_blocks": 4096 if device.is_cuda else 24,
                      "max_model_len_tokens": 1024 if device.is_cuda else 96,
                      "cuda_graph_sizes": [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64] if device.is_cuda else []},
        "plans": {"tp1": {"partitioner": "tp-pp", "tp": 1, "pp": 1}},
    }


def measure_serving_host(device: Device, quick: bool, seed: int, progress: Progress) -> dict[str, Any]:
    raw = host_cost_experiment(device, quick, seed)
    setup = serving_setup_from_dict(raw)
    plan = build_plan(setup.experiment, "tp1")
    result = serve_in_process(setup, plan, "tp1", device.torch_device, ServingOptions())
    host = np.asarray(result.stats.host_s, dtype=np.float64)
    seqs = np.asarray(result.stats.num_seqs, dtype=np.float64)
    graph = np.asarray(result.stats.graph, dtype=bool)
    slope, intercept = (np.polyfit(seqs, host, 1) if len(set(seqs.tolist())) > 1 else (0.0, float(host.mean())))
    summary: dict[str, Any] = {
        "host_s_per_iteration": float(host.mean()),
        "p50_s": float(np.percentile(host, 50)), "p90_s": float(np.percentile(host, 90)),
        "iterations": int(host.size), "requests": len(result.run.records),
        "graph_iterations": int(graph.sum()),
        "graph_mean_s": float(host[graph].mean()) if graph.any() else None,
        "eager_mean_s": float(host[~graph].mean()) if (~graph).any() else None,
        "fit_vs_num_seqs": {"intercept_s": float(intercept), "per_seq_s": float(slope)},
        "forward_mean_s": float(np.mean(result.stats.forward_s)),
        "attention": result.record.environment["serving"]["attention"]["path"],
        "experiment": raw,
        "definition": "per iteration: wall time from the scheduler call to the end stamp, less the forward "
                      "(first launch to device synchronize)",
    }
    progress(f"serving host cost: {summary['host_s_per_iteration'] * 1e6:.1f} us per iteration (p50 "
             f"{summary['p50_s'] * 1e6:.1f}, p90 {summary['p90_s'] * 1e6:.1f}) over {summary['iterations']} "
             f"iterations of {raw['model']}")
    return summary
