"""What ``layerwise run`` checks before it launches a serving run (nothing starts on bad input)."""

from __future__ import annotations

import argparse

from executor.launch import nproc_for
from executor.serving.session import check_serving_plan
from executor.serving.worker import check_outputs, refuse_fixed_batch_options, resolve_serving
from executor.worker import choose_backend
from serving.setup import ServingSetup
from topology.errors import LayerwiseError
from topology.plan import Plan

# A serving run lasts as long as its requests: the launcher's backstop gets an hour more than a
# fixed-batch run's (a hung rank is still ended by the rank timeout; rank 0 sends heartbeats when idle).
SERVING_BACKSTOP_S = 3600.0


def check_serving_launch(args: argparse.Namespace) -> tuple[ServingSetup, str, Plan, int]:
    """The experiment, its plan and the processes per node; one ``LayerwiseError`` on bad input."""
    refuse_fixed_batch_options(args)
    check_outputs(args, rank=0)
    setup, plan_name, plan = resolve_serving(args)
    check_serving_plan(setup, plan, plan.num_devices)
    nproc = nproc_for(plan, args.nnodes)
    if choose_backend(args.backend) == "nccl":
        import torch

        available = torch.cuda.device_count()
        if nproc > available:
            raise LayerwiseError("plan.devices", f"plan {plan.describe()} needs {nproc} GPUs on this host, "
                                                 f"it has {available}")
    return setup, plan_name, plan, nproc
