"""The PyTorch executor: run a ``topology.plan.Plan`` for real under torchrun.

NCCL on GPUs, gloo on CPUs. Imports no simpy (the GPU machines have none) and never
imports ``sim``. Entry points: ``torchrun -m executor EXP.yaml`` (one process per device,
:mod:`executor.worker`), ``layerwise run EXP.yaml`` (:mod:`executor.run_cli`, which launches
torchrun) and ``python -m executor.suite SUITE --out DIR`` (:mod:`executor.suite`). A serving
experiment (``workload.phase: serve``) runs in :mod:`executor.serving`.
"""
