"""The ``vllm serve`` command line of a deployment, for users who deploy it with vLLM (pure text).

Flags (vLLM's engine arguments): ``--tensor-parallel-size``, ``--pipeline-parallel-size``,
``--max-num-seqs``, ``--max-num-batched-tokens``, ``--enable-chunked-prefill`` or
``--no-enable-chunked-prefill``, ``--max-model-len``, ``--block-size``, ``--gpu-memory-utilization``;
uneven pipeline stages through ``VLLM_PP_LAYER_PARTITION``; replicas as ``--data-parallel-size``
(vLLM's front end then balances requests by load, which the search modelled with the chosen router).
vLLM runs one TP degree for every stage, so a plan with a TP degree per stage has no vLLM equivalent,
and the command says so. Disaggregated deployments run one prefill and one decode instance kind with a
KV connector (vLLM's ``NixlConnector``) behind a proxy that sends each request to a prefill instance,
then to a decode instance.
"""

from __future__ import annotations

from serving.scheduler_config import SchedulerConfig
from sim.capacity.space import Deployment, ReplicaPlan

KV_CONNECTOR = '\'{"kv_connector":"NixlConnector","kv_role":"kv_both"}\''


def _parallel_flags(plan: ReplicaPlan) -> tuple[str, list[str]] | None:
    """(environment prefix, flags) for one replica's plan; None if vLLM cannot run it."""
    tps = {stage.tp_degree for stage in plan.plan.stages}
    if len(tps) != 1:
        return None
    flags = [f"--tensor-parallel-size {tps.pop()}", f"--pipeline-parallel-size {plan.stages}"]
    counts = [stage.num_layers for stage in plan.plan.stages]
    even = max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)
    prefix = "" if even or plan.stages == 1 else f"VLLM_PP_LAYER_PARTITION={','.join(str(c) for c in counts)} "
    return prefix, flags


def _scheduler_flags(scheduler: SchedulerConfig, gpu_memory_utilization: float) -> list[str]:
    chunked = "--enable-chunked-prefill" if scheduler.chunked_prefill else "--no-enable-chunked-prefill"
    return [f"--max-num-seqs {scheduler.max_num_seqs}", f"--max-num-batched-tokens {scheduler.max_num_batched_tokens}",
            chunked, f"--max-model-len {scheduler.max_model_len_tokens}", f"--block-size {scheduler.block_size_tokens}",
            f"--gpu-memory-utilization {gpu_memory_utilization:g}"]


def _one(model_id: str, plan: ReplicaPlan, replicas: int, scheduler: SchedulerConfig, utilization: float,
         extra: list[str]) -> str:
    parallel = _parallel_flags(plan)
    if parallel is None:
        return (f"# {plan.label}: vLLM runs one TP degree in every pipeline stage; this plan has a TP degree "
                f"per stage and no vLLM equivalent")
    prefix, flags = parallel
    if replicas > 1:
        flags.append(f"--data-parallel-size {replicas}")
    return " ".join([f"{prefix}vllm serve {model_id}", *flags, *_scheduler_flags(scheduler, utilization), *extra])


def vllm_serve_commands(model_id: str, deployment: Deployment, scheduler: SchedulerConfig,
                        gpu_memory_utilization: float) -> list[str]:
    """The command line(s): one for an aggregated deployment, prefill and decode for a disaggregated one."""
    if deployment.decode_plan is None:
        return [_one(model_id, deployment.plan, deployment.replicas, scheduler, gpu_memory_utilization, [])]
    extra = ["--kv-transfer-config", KV_CONNECTOR]
    return [f"# prefill: {deployment.replicas} instance(s)",
            _one(model_id, deployment.plan, deployment.replicas, scheduler, gpu_memory_utilization, extra),
            f"# decode: {deployment.decode_replicas} instance(s)",
            _one(model_id, deployment.decode_plan, deployment.decode_replicas, scheduler, gpu_memory_utilization,
                 extra),
            "# and a proxy that sends each request to a prefill instance (max_tokens 1), then to a decode "
            "instance (vLLM's disaggregated-serving proxy example)"]
