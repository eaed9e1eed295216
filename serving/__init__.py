"""Serving: what a deployment sees when requests arrive one by one. Shared by the simulator and the
executor, so pure: it imports ``topology`` and the standard library only (no SimPy, no torch;
``lint-imports`` holds it to that).

Its homes (issue 23 builds them):

* ``serving/requests.py``: a request and its life (waiting, running, preempted, finished) with
  its timestamps;
* ``serving/workload.py``: serving workloads (``workload.phase: serve``): arrival processes,
  length distributions, traces, all seeded;
* ``serving/scheduler.py``: the iteration scheduler (vLLM V1's policy and two others): given the
  time, the queue and the running set, the next iteration's batch;
* ``serving/kv_blocks.py``: the paged KV cache's block accounting;
* ``serving/latency.py``: TTFT, TPOT, inter-token latency, E2E and their percentiles, goodput.

The simulator drives the scheduler with simulated iteration times, the executor with measured
ones; both record per-request timestamps in one schema, which ``validate`` compares.
"""
