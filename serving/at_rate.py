"""The same serving workload at another request rate (what a capacity search varies).

* Poisson and Gamma arrivals take the new ``rate_per_s`` (a Gamma keeps its ``cv``). Their gaps are
  drawn as (1 / rate) times one seeded stream, so every rate sees the same requests, in the same order,
  with the same lengths, on a time axis scaled by 1 / rate: the runs at two rates differ only in how
  close the requests come.
* A trace is replayed faster or slower: ``speedup`` = rate / the trace's own rate (its rows over the
  time of its last arrival, at speedup 1).
* A closed loop has no rate (its users set it) and is refused.

The result is exactly what ``--set workload.arrivals.rate_per_s=R`` gives ``layerwise simulate``.
"""

from __future__ import annotations

import dataclasses

from serving.arrivals import ClosedLoopArrivals, GammaArrivals, PoissonArrivals, TraceArrivals
from serving.sources import open_loop_requests
from serving.workload import ServingWorkload
from topology.errors import LayerwiseError


def workload_rate_per_s(workload: ServingWorkload) -> float:
    """The workload's own rate: the arrivals' ``rate_per_s``, or a trace's rows per second at its speedup."""
    arrivals = workload.arrivals
    if isinstance(arrivals, (PoissonArrivals, GammaArrivals)):
        return arrivals.rate_per_s
    if isinstance(arrivals, TraceArrivals):
        requests = open_loop_requests(workload)
        last_s = requests[-1].arrival_s
        if last_s <= 0:
            raise LayerwiseError("workload.trace", "every row arrives at t = 0: the trace has no rate to scale")
        return len(requests) / last_s
    raise LayerwiseError("workload.arrivals.kind", "a closed loop has no request rate to search over "
                         "(its users set the rate); use poisson, gamma or a trace")


def workload_at_rate(workload: ServingWorkload, rate_per_s: float) -> ServingWorkload:
    """``workload`` with its arrivals at ``rate_per_s`` requests per second (module docstring)."""
    if not rate_per_s > 0:
        raise LayerwiseError("rate_per_s", f"must be > 0, got {rate_per_s!r}")
    arrivals = workload.arrivals
    if isinstance(arrivals, PoissonArrivals):
        return dataclasses.replace(workload, arrivals=PoissonArrivals(rate_per_s))
    if isinstance(arrivals, GammaArrivals):
        return dataclasses.replace(workload, arrivals=GammaArrivals(rate_per_s, arrivals.cv))
    if isinstance(arrivals, TraceArrivals):
        speedup = arrivals.speedup * rate_per_s / workload_rate_per_s(workload)
        return dataclasses.replace(workload, arrivals=TraceArrivals(speedup))
    assert isinstance(arrivals, ClosedLoopArrivals)
    raise LayerwiseError("workload.arrivals.kind", "a closed loop has no request rate to search over "
                         "(its users set the rate); use poisson, gamma or a trace")
