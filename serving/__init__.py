"""Serving: what a deployment sees when requests arrive one by one. Shared by the simulator and the
executor, so pure: it imports ``topology``, numpy and the standard library only (no SimPy, no
torch; ``lint-imports`` holds it to that).

Its homes (issue 23):

* ``serving/requests.py``: a request (``RequestSpec``), its life in the scheduler (``RequestState``:
  waiting, running, preempted, finished, rejected) and what is left of it (``RequestRecord``);
* ``serving/workload.py``: serving workloads (``workload.phase: serve``), read by
  ``serving_workload_from_dict``, built from ``arrivals.py`` (Poisson, Gamma, closed loop, trace),
  ``lengths.py`` (fixed, uniform, normal, lognormal, histogram, trace) and ``traces.py`` (simple
  CSV/JSONL, Azure LLM inference, BurstGPT); ``sources.py`` turns one into requests, all seeded;
* ``serving/scheduler.py``: the iteration scheduler (vLLM V1's policy and two others, settings in
  ``scheduler_config.py``): given the time, the queue and the running set, the next iteration's
  batch (``batch.py``); ``kv_blocks.py``: the paged KV cache's block accounting;
* ``serving/driver.py``: a pure discrete-event driver (replicas behind a router from
  ``routing.py``, a pipeline of iterations in flight) around a given iteration-time function;
* ``serving/latency.py``: TTFT, TPOT, inter-token latency, E2E and their percentiles, throughput,
  goodput against ``slo.py``; ``occupancy.py``: KV use and queue lengths over time, Little's law;
  ``stability.py``: whether a run reached a steady state at all.

The simulator drives the scheduler with simulated iteration times, the executor with measured
ones; both record per-request timestamps in one schema (``RequestRecord``), which ``validate``
compares. ``fields.py`` holds the checks that turn loose input into typed values.
"""
