"""The simulator's named, fittable parameters, resolved from data files and a profile.

Defaults come from the GPU and link data files (``topology/data``); a
:class:`topology.profile.HardwareProfile` replaces them with measured values and then with
``ProfileParams.sim_params`` (fitted by ``layerwise validate``) by name. Only the
dimensionless efficiencies below have inline defaults, each with its reason.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from topology.cluster import Cluster
from topology.errors import LayerwiseError
from topology.profile import HardwareProfile

# Dimensionless modelling constants (not hardware numbers), each a starting point for fitting:
DEFAULT_COMPUTE_EFFICIENCY = 0.75  # large BF16 GEMMs on Hopper reach ~75-80% of dense peak (cuBLAS)
DEFAULT_ATTENTION_EFFICIENCY = 0.5  # FlashAttention-2/3 forward reaches ~35-75% of peak on H100
DEFAULT_HBM_EFFICIENCY = 0.9  # streaming kernels reach ~90% of the HBM datasheet bandwidth
DEFAULT_LINK_EFFICIENCY = 0.8  # nccl-tests bus bandwidth tops out near 80% of the link's per-direction peak
# NCCL's own latency model (src/graph/tuning.cc): a base latency per collective of about 6.6 us for the
# ring low-latency protocol, beside the per-step latency of the link
DEFAULT_COLLECTIVE_BASE_LATENCY_S = 6.6e-6
# the ranks of a TP group finish a compute segment a few percent apart; the all-reduce after it waits for
# the slowest (a starting point: fitted on 4 x H200 runs, results/report-h200x4)
DEFAULT_TP_STRAGGLER_FRACTION = 0.03
DEFAULT_GEMM_MIN_ROWS = 64.0  # Hopper wgmma tiles are 64 rows: a GEMM with fewer rows pays for 64
# Per-kernel fixed times and bandwidth shares of the base kernel model (sim.costs.kernels). A profile's
# measured kernels replace the GEMM and attention ones (sim.costs.build); the rest are fitted on runs.
# Starting points from one H200 (results/hardware/h200x1-families/kernels: decode GEMMs ~3-5 us at a
# few MB of weights; decode attention ~6-7 us at a few MB of KV cache; and the profiled decode step in
# results/hardware/h200x1-v2/small-b64-c128-mb2-traced-graph.pt.trace.json: an RMSNorm kernel 2.3 us,
# an add or GELU 1.1-1.3 us, each K or V cache copy 2.1-2.2 us, beside their launches).
DEFAULT_GEMM_LATENCY_S = 3.0e-6
DEFAULT_GEMM_BW_EFFICIENCY = 0.9
DEFAULT_ATTENTION_LATENCY_S = 6.0e-6
DEFAULT_ATTENTION_BW_EFFICIENCY = 1.0
DEFAULT_NORM_LATENCY_S = 2.3e-6
DEFAULT_ELEMENTWISE_LATENCY_S = 1.2e-6
DEFAULT_KV_WRITE_LATENCY_S = 2.2e-6
# The serving engine's host time per iteration (scheduling, input preparation, sampling), outside the
# device: a placeholder of 1 ms until ``layerwise calibrate --only serving-host`` measures it on the
# executor; a serving prediction on a profile without the measurement says so.
DEFAULT_SERVING_ITERATION_HOST_S = 1.0e-3
UNSCALED = 1.0  # a prefill time scale that leaves the kernel model as it is (fitted by layerwise validate)


@dataclass(frozen=True)
class SimParams:
    """Per-device and per-link parameters, SI units (FLOP/s, bytes, bytes/s, s)."""

    peak_flops_per_s: float  # dense BF16 tensor-core peak (or a measured best GEMM rate)
    compute_efficiency: float  # achieved fraction of peak for large GEMMs
    attention_efficiency: float  # achieved fraction of peak for compute-bound attention (prefill)
    gemm_min_rows: float  # GEMMs with fewer rows (tokens) than this run at rows/gemm_min_rows of the rate
    gemm_latency_s: float  # a GEMM kernel's fixed time beside its bytes (its launch apart)
    gemm_bw_efficiency: float  # a memory-bound GEMM's share of the HBM read rate
    attention_latency_s: float  # an attention kernel's fixed time beside its bytes
    attention_bw_efficiency: float  # decode attention's share of the HBM read rate
    norm_latency_s: float  # an RMSNorm kernel's fixed time (a reduction per token)
    elementwise_latency_s: float  # an elementwise kernel's fixed time (add, activation)
    kv_write_latency_s: float  # each of the two cache copies after attention
    hbm_bw_bytes_per_s: float  # HBM bandwidth of read + write streams (datasheet, or a measured copy)
    hbm_read_bw_bytes_per_s: float  # HBM bandwidth of pure reads: weights, KV cache (datasheet, or measured read)
    hbm_efficiency: float  # achieved fraction of both HBM bandwidths for streaming kernels
    l2_bw_bytes_per_s: float  # read bandwidth of data hot in L2
    l2_usable_bytes: float  # bytes of L2 a resident working set can hold
    launch_overhead_eager_s: float  # per-kernel cost, eager launches
    launch_overhead_graph_s: float  # per-kernel cost inside a CUDA-graph replay
    intra_node_bw_bytes_per_s: float  # one GPU's intra-node link (NVLink into NVSwitch), per direction
    inter_node_bw_bytes_per_s: float  # one GPU's inter-node link (NIC), per direction
    link_efficiency: float  # achieved fraction of link bandwidth
    collective_latency_s: float  # per ring step of a collective inside a node
    collective_base_latency_s: float  # per collective, once: kernel start + the all-rank handshake (NCCL baseLat)
    collective_link_efficiency: float  # achieved fraction of link bandwidth for an all-reduce inside a node
    tp_straggler_fraction: float  # an all-reduce waits this fraction of the compute before it (the slowest rank)
    p2p_latency_s: float  # per point-to-point message inside a node
    inter_node_latency_s: float  # per message or ring step that crosses nodes
    # Prefill passes only (new tokens > 1): measured / modelled kernel time by kind, fitted on
    # prefill runs (a long prefill sustains lower clocks than calibration's short bursts, and its
    # attention runs at batch sizes calibration does not measure). 1 = the model as it is.
    prefill_gemm_time_scale: float
    prefill_attention_time_scale: float
    prefill_elementwise_time_scale: float  # norms, activations, residual adds
    serving_iteration_host_s: float  # a serving engine's host time per iteration (outside the device)
    # A serving iteration without a CUDA graph (eager) also pays host time per layer on every stage, in
    # series with its kernels (launches, per-request indexing and gathers): 0 for an engine whose host
    # work hides under the device. Fitted on measured serving runs (layerwise validate-serving).
    serving_layer_host_s: float = 0.0  # per layer
    serving_seq_layer_host_s: float = 0.0  # per layer and per sequence in the iteration

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not math.isfinite(value):
                raise LayerwiseError(f"sim_params.{f.name}", f"must be a finite number, got {value}")
            is_time = f.name.endswith("_s") and not f.name.endswith("_per_s")  # a rate is > 0 like any other
            if is_time and value > MAX_LATENCY_S:
                raise LayerwiseError(f"sim_params.{f.name}", f"must be <= {MAX_LATENCY_S:g} s (a per-kernel, "
                                                             f"per-message or per-iteration time), got {value}")
            if is_time or f.name in NON_NEGATIVE:
                if value < 0:
                    raise LayerwiseError(f"sim_params.{f.name}", f"must be >= 0, got {value}")
            elif value <= 0:
                raise LayerwiseError(f"sim_params.{f.name}", f"must be > 0, got {value}")
        for name in ("compute_efficiency", "attention_efficiency", "hbm_efficiency", "link_efficiency",
                     "collective_link_efficiency"):
            if getattr(self, name) > 1.0:
                raise LayerwiseError(f"sim_params.{name}", f"must be <= 1, got {getattr(self, name)}")

    @property
    def hbm_effective_bw_bytes_per_s(self) -> float:
        """Read + write streams (activations in and out, KV appends)."""
        return self.hbm_bw_bytes_per_s * self.hbm_efficiency

    @property
    def hbm_effective_read_bw_bytes_per_s(self) -> float:
        """Pure read streams (weights, the KV cache attention reads)."""
        return self.hbm_read_bw_bytes_per_s * self.hbm_efficiency

    def launch_overhead_s(self, cuda_graphs: bool) -> float:
        return self.launch_overhead_graph_s if cuda_graphs else self.launch_overhead_eager_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_LATENCY_S = 1.0  # every *_s parameter is one kernel's, message's or iteration's time
FITTABLE_PARAMS: tuple[str, ...] = tuple(f.name for f in fields(SimParams))
NON_NEGATIVE = frozenset({"tp_straggler_fraction"})  # dimensionless, and 0 is meaningful


def datasheet_params(cluster: Cluster) -> SimParams:
    """Defaults from the cluster's GPU and link data files."""
    gpu, intra, inter = cluster.gpu, cluster.intra_node_link, cluster.inter_node_link
    inter_link = inter if inter is not None else intra
    return SimParams(
        peak_flops_per_s=gpu.dense_bf16_flops_per_s,
        compute_efficiency=DEFAULT_COMPUTE_EFFICIENCY,
        attention_efficiency=DEFAULT_ATTENTION_EFFICIENCY,
        gemm_min_rows=DEFAULT_GEMM_MIN_ROWS,
        gemm_latency_s=DEFAULT_GEMM_LATENCY_S,
        gemm_bw_efficiency=DEFAULT_GEMM_BW_EFFICIENCY,
        attention_latency_s=DEFAULT_ATTENTION_LATENCY_S,
        attention_bw_efficiency=DEFAULT_ATTENTION_BW_EFFICIENCY,
        norm_latency_s=DEFAULT_NORM_LATENCY_S,
        elementwise_latency_s=DEFAULT_ELEMENTWISE_LATENCY_S,
        kv_write_latency_s=DEFAULT_KV_WRITE_LATENCY_S,
        hbm_bw_bytes_per_s=gpu.hbm_bw_bytes_per_s,
        hbm_read_bw_bytes_per_s=gpu.hbm_bw_bytes_per_s,  # a datasheet gives one peak for both
        hbm_efficiency=DEFAULT_HBM_EFFICIENCY,
        l2_bw_bytes_per_s=gpu.l2_bw_bytes_per_s,
        l2_usable_bytes=float(gpu.l2_usable_bytes),
        launch_overhead_eager_s=gpu.launch_overhead_eager_s,
        launch_overhead_graph_s=gpu.launch_overhead_graph_s,
        intra_node_bw_bytes_per_s=intra.bw_bytes_per_s_per_direction,
        inter_node_bw_bytes_per_s=inter_link.bw_bytes_per_s_per_direction,
        link_efficiency=DEFAULT_LINK_EFFICIENCY,
        collective_latency_s=intra.latency_s,
        collective_base_latency_s=DEFAULT_COLLECTIVE_BASE_LATENCY_S,
        collective_link_efficiency=DEFAULT_LINK_EFFICIENCY,
        tp_straggler_fraction=DEFAULT_TP_STRAGGLER_FRACTION,
        p2p_latency_s=intra.latency_s,
        inter_node_latency_s=inter_link.latency_s,
        prefill_gemm_time_scale=UNSCALED,
        prefill_attention_time_scale=UNSCALED,
        prefill_elementwise_time_scale=UNSCALED,
        serving_iteration_host_s=DEFAULT_SERVING_ITERATION_HOST_S,
    )


def resolve_params(cluster: Cluster, profile: HardwareProfile | None) -> SimParams:
    """Datasheet defaults, then the profile's measured fields, then its ``sim_params``."""
    params = datasheet_params(cluster)
    if profile is None:
        return params
    measured = profile.params
    updates: dict[str, float] = {}
    if measured.hbm_bw_bytes_per_s is not None:
        # Measured rates are already what streaming kernels achieve (efficiency 1 for both), so a
        # read rate is used with a measured copy rate only. Without one (profiles from before
        # it was measured), reads are priced at the copy rate, as they were.
        copy = float(measured.hbm_bw_bytes_per_s)
        read = measured.hbm_read_bw_bytes_per_s
        updates.update(hbm_bw_bytes_per_s=copy, hbm_read_bw_bytes_per_s=float(read) if read else copy,
                       hbm_efficiency=1.0)
    if measured.matmul_flops_per_s is not None:
        # The best measured large-GEMM rate is the achieved rate itself.
        updates.update(peak_flops_per_s=float(measured.matmul_flops_per_s), compute_efficiency=1.0)
    for name in ("l2_usable_bytes", "l2_bw_bytes_per_s", "launch_overhead_eager_s", "launch_overhead_graph_s"):
        value = getattr(measured, name)
        if value is not None:
            updates[name] = float(value)
    for name, value in measured.sim_params.items():
        if name not in FITTABLE_PARAMS:
            raise LayerwiseError(
                f"profile.sim_params.{name}",
                f"unknown simulator parameter (known: {', '.join(FITTABLE_PARAMS)})",
            )
        updates[name] = float(value)
    if "link_efficiency" in updates and "collective_link_efficiency" not in measured.sim_params:
        updates["collective_link_efficiency"] = updates["link_efficiency"]  # one efficiency unless both are fitted
    return replace(params, **updates)
