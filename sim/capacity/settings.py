"""A deployment's scheduler: the experiment's ``scheduler`` section with the searched settings in it.

``max_num_seqs``, ``max_num_batched_tokens`` and the policy (``vllm`` with chunked prefill,
``prefill-first`` without) come from the :class:`~sim.capacity.space.Knobs`; everything else (block
size, ``max_model_len_tokens``, ``gpu_memory_utilization``, ``reserve_full_prompt``) from the
experiment. CUDA-graph sizes given as ``auto`` (the default) follow the settings as vLLM's do
(:func:`serving.setup.default_graph_sizes`); a list in the file is kept. KV blocks ``auto`` are counted
per plan from the HBM left after the weights and the activations of this token budget
(:meth:`serving.setup.ServingSetup.scheduler_for`).
"""

from __future__ import annotations

import dataclasses

from serving.scheduler_config import SchedulerConfig
from serving.setup import AUTO, ServingSetup, default_graph_sizes
from sim.capacity.space import Knobs
from topology.plan import Plan


def graphs_auto(setup: ServingSetup) -> bool:
    """Whether the experiment leaves ``cuda_graph_sizes`` to the settings (``auto``, the default)."""
    scheduler = setup.experiment.raw.get("scheduler") or {}
    return isinstance(scheduler, dict) and scheduler.get("cuda_graph_sizes", AUTO) == AUTO


def knob_setup(setup: ServingSetup, knobs: Knobs) -> ServingSetup:
    """``setup`` with these settings (a ``LayerwiseError`` if the scheduler refuses them, e.g. no
    chunking with a budget below ``max_model_len_tokens``)."""
    base = setup.scheduler
    sizes = (default_graph_sizes(knobs.max_num_seqs, knobs.max_num_batched_tokens) if graphs_auto(setup)
             else base.cuda_graph_sizes)
    scheduler = SchedulerConfig(policy=knobs.policy, max_num_batched_tokens=knobs.max_num_batched_tokens,
                                max_num_seqs=knobs.max_num_seqs, block_size_tokens=base.block_size_tokens,
                                num_blocks=base.num_blocks, max_model_len_tokens=base.max_model_len_tokens,
                                cuda_graph_sizes=sizes, reserve_full_prompt=base.reserve_full_prompt)
    return dataclasses.replace(setup, scheduler=scheduler)


def deployment_scheduler(setup: ServingSetup, plan: Plan, knobs: Knobs) -> SchedulerConfig:
    """One replica's scheduler for ``plan`` with ``knobs`` (KV blocks counted for the plan)."""
    return knob_setup(setup, knobs).scheduler_for(plan)
