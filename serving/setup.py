"""A serving experiment: the experiment file of a ``workload.phase: serve`` run, read once.

```yaml
model: llama3-8b
cluster: h100x1
workload: {phase: serve, seed: 0, num_requests: 2000, arrivals: {kind: poisson, rate_per_s: 8},
           prompt_tokens: {...}, output_tokens: {...}}          # serving/workload.py
scheduler:                                                       # serving/scheduler_config.py
  policy: vllm                    # vllm | prefill-first | static
  max_num_batched_tokens: 8192
  max_num_seqs: 256
  block_size_tokens: 16
  num_blocks: auto                # auto: from the HBM left after weights and activations, per stage
  gpu_memory_utilization: 0.9     # the share of HBM 'auto' may use (vLLM's default)
  max_model_len_tokens: 8192
  cuda_graph_sizes: auto          # auto: vLLM's [1, 2, 4, 8, 16, ...] up to min(2 max_num_seqs, 512); [] for none
serving: {replicas: 1, router: round_robin}                     # serving/routing.py
slo: {ttft: {p99: 0.5}, tpot: {p99: 0.05}}                      # serving/slo.py
plans: {tp1: {partitioner: tp-pp, tp: 1, pp: 1}}
```

Every key but ``workload`` may be left out (the defaults above). The plan machinery of
:mod:`topology.experiment` sees a *sizing* workload: ``max_model_len_tokens`` of KV in all (the
longest request must fit; the KV block pool takes what is left), as 64 short sequences. Everything here is a value; the
KV block count needs a plan, so :meth:`ServingSetup.scheduler_for` takes one.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from serving.fields import check_known_keys, one_of, positive_int
from serving.kv_blocks import kv_blocks_from_memory
from serving.routing import ROUTERS
from serving.scheduler_config import SchedulerConfig, scheduler_config_from_dict
from serving.slo import SloSpec, slo_spec_from_dict
from serving.workload import ServingWorkload, serving_workload_from_dict
from topology.errors import LayerwiseError
from topology.experiment import SERVE_PHASE, Experiment, experiment_from_dict, is_serving_raw, read_experiment_raw
from topology.footprint import activation_peak_bytes
from topology.layer_graph import layer_kv_bytes_per_device
from topology.plan import Plan
from topology.workload import Workload

SERVE = SERVE_PHASE
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192  # vLLM's API-server default on large GPUs
DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_MAX_MODEL_LEN_TOKENS = 8192
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9  # vLLM 0.11's CacheConfig default
AUTO = "auto"
MAX_GRAPH_SIZE = 512
# The plans' sizing workload: max_model_len tokens of KV in all, as 64 sequences (any microbatch count
# a plan file gives up to 64 divides it); the scheduler, not the plan, decides the batches served.
SIZING_BATCH = 64


@dataclass(frozen=True)
class ServingSetup:
    """A serving experiment: the plans' experiment (with its sizing workload), the requests, the
    scheduler's settings (``num_blocks`` None: from memory, per plan), replicas, router and SLOs."""

    experiment: Experiment
    workload: ServingWorkload
    scheduler: SchedulerConfig  # num_blocks is a placeholder when ``auto_blocks``
    auto_blocks: bool
    gpu_memory_utilization: float
    replicas: int = 1
    router: str = "round_robin"
    slos: SloSpec = field(default_factory=SloSpec)

    def kv_blocks(self, plan: Plan) -> int:
        """Blocks the plan's KV pool holds: the least over its stages of what one GPU of the stage has
        left (``gpu_memory_utilization`` x HBM, less weights and the peak activations of a full token
        budget), in blocks of this stage's KV bytes per token (``serving.kv_blocks``)."""
        if not self.auto_blocks:
            return self.scheduler.num_blocks
        model, hbm = self.experiment.model, self.experiment.cluster.gpu.hbm_capacity_bytes
        budget = Workload(phase="prefill", batch_size=1, prompt_len=self.scheduler.max_num_batched_tokens,
                          context_len=1, warmup_iters=0, measured_iters=1)
        blocks = []
        for stage in plan.stages:
            per_token = stage.num_layers * layer_kv_bytes_per_device(model, stage.tp_degree, 1, 1)
            activations = activation_peak_bytes(model, stage.tp_degree, budget, 1)
            blocks.append(kv_blocks_from_memory(hbm, stage.footprint.weights_bytes, activations, per_token,
                                                self.scheduler.block_size_tokens, self.gpu_memory_utilization))
        return min(blocks)

    def scheduler_for(self, plan: Plan) -> SchedulerConfig:
        """The scheduler of one replica running ``plan``; refuses a plan with no room for one block."""
        blocks = self.kv_blocks(plan)
        if blocks < 1:
            raise LayerwiseError("scheduler.num_blocks", f"plan {plan.describe()}: no HBM left for the KV cache after "
                                 f"the weights and activations (at gpu_memory_utilization "
                                 f"{self.gpu_memory_utilization:g})")
        return dataclasses.replace(self.scheduler, num_blocks=blocks)



def default_graph_sizes(max_num_seqs: int, max_num_batched_tokens: int) -> tuple[int, ...]:
    """vLLM 0.11's capture list: 1, 2, 4, then multiples of 8 up to min(2 x max_num_seqs, 512), each
    within the token budget."""
    top = min(2 * max_num_seqs, MAX_GRAPH_SIZE)
    sizes = [1, 2, 4, *range(8, top + 1, 8)]
    return tuple(s for s in sizes if s <= min(top, max_num_batched_tokens))


def _scheduler(raw: Any) -> tuple[SchedulerConfig, bool, float]:
    field = "scheduler"
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise LayerwiseError(field, f"must be a mapping, got {raw!r}")
    known = ("policy", "max_num_batched_tokens", "max_num_seqs", "block_size_tokens", "num_blocks",
             "gpu_memory_utilization", "max_model_len_tokens", "cuda_graph_sizes", "reserve_full_prompt")
    check_known_keys(field, raw, known)
    values = dict(raw)
    utilization = values.pop("gpu_memory_utilization", DEFAULT_GPU_MEMORY_UTILIZATION)
    if isinstance(utilization, bool) or not isinstance(utilization, (int, float)) or not 0 < utilization <= 1:
        raise LayerwiseError(f"{field}.gpu_memory_utilization", f"must be a number in (0, 1], got {utilization!r}")
    values.setdefault("policy", "vllm")
    values.setdefault("max_num_seqs", DEFAULT_MAX_NUM_SEQS)
    values.setdefault("max_model_len_tokens", DEFAULT_MAX_MODEL_LEN_TOKENS)
    chunked = values["policy"] == "vllm"
    values.setdefault("max_num_batched_tokens", DEFAULT_MAX_NUM_BATCHED_TOKENS if chunked
                      else max(DEFAULT_MAX_NUM_BATCHED_TOKENS, values["max_model_len_tokens"]))
    auto_blocks = values.get("num_blocks", AUTO) == AUTO
    if auto_blocks:
        values["num_blocks"] = 1  # a placeholder; ServingSetup.scheduler_for sets it per plan
    if values.get("cuda_graph_sizes", AUTO) == AUTO:
        seqs, tokens = values["max_num_seqs"], values["max_num_batched_tokens"]
        positive_int(f"{field}.max_num_seqs", seqs)
        positive_int(f"{field}.max_num_batched_tokens", tokens)
        values["cuda_graph_sizes"] = list(default_graph_sizes(seqs, tokens))
    return scheduler_config_from_dict(values), auto_blocks, float(utilization)


def _serving(raw: Any) -> tuple[int, str]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise LayerwiseError("serving", f"must be a mapping, got {raw!r}")
    check_known_keys("serving", raw, ("replicas", "router"))
    replicas = positive_int("serving.replicas", raw.get("replicas", 1))
    return replicas, one_of("serving.router", raw.get("router", "round_robin"), ROUTERS)


def serving_setup_from_dict(raw: dict[str, Any], base_dir: str = ".", default_name: str = "experiment"
                            ) -> ServingSetup:
    """A serving experiment from its file's mapping (overrides applied). One ``LayerwiseError`` per
    bad field."""
    workload = serving_workload_from_dict(raw["workload"], base_dir)
    scheduler, auto_blocks, utilization = _scheduler(raw.get("scheduler"))
    replicas, router = _serving(raw.get("serving"))
    slos = slo_spec_from_dict(raw["slo"]) if raw.get("slo") is not None else SloSpec()
    plans_raw = {k: copy.deepcopy(v) for k, v in raw.items() if k not in ("scheduler", "serving", "slo")}
    plans_raw["workload"] = {"phase": "decode", "batch_size": SIZING_BATCH,
                             "context_len": -(-scheduler.max_model_len_tokens // SIZING_BATCH),
                             "warmup_iters": 0, "measured_iters": 1, "seed": workload.seed,
                             "cuda_graphs": bool(scheduler.cuda_graph_sizes)}
    experiment = dataclasses.replace(experiment_from_dict(plans_raw, base_dir, default_name), raw=raw)
    return ServingSetup(experiment=experiment, workload=workload, scheduler=scheduler, auto_blocks=auto_blocks,
                        gpu_memory_utilization=utilization, replicas=replicas, router=router, slos=slos)


def load_serving_setup(path_or_name: str, overrides: list[str] | None = None) -> ServingSetup:
    raw, base_dir, name = read_experiment_raw(path_or_name, overrides)
    if not is_serving_raw(raw):
        raise LayerwiseError("workload.phase", f"{path_or_name}: not a serving workload (phase: {SERVE} expected)")
    return serving_setup_from_dict(raw, base_dir, name)


def experiment_is_serving(path_or_name: str, overrides: list[str] | None = None) -> bool:
    raw, _, _ = read_experiment_raw(path_or_name, overrides)
    return is_serving_raw(raw)

