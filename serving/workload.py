"""A serving workload (an experiment file's ``workload`` with ``phase: serve``): how requests
arrive, how long their prompts and outputs are, how many come, and the seed that fixes them all.

```yaml
workload:
  phase: serve
  seed: 0
  num_requests: 1000            # or duration_s: 600 (exactly one; a trace replay may give neither)
  arrivals: {kind: gamma, rate_per_s: 4.0, cv: 2.0}          # serving/arrivals.py
  prompt_tokens: {kind: lognormal, median_tokens: 1000, sigma: 0.8}   # serving/lengths.py
  output_tokens: {kind: trace}
  trace: {path: traces/conv.csv, format: azure}             # serving/traces.py; needed by any 'trace' kind
```

A trace replay (``arrivals: {kind: trace}``) takes the trace's first ``num_requests`` rows, or the
rows up to ``duration_s``, or all of them. Lengths of kind ``trace`` take the rows in order; asking
for more requests than the trace has rows is refused rather than wrapped around.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.arrivals import ArrivalSpec, ClosedLoopArrivals, TraceArrivals, arrivals_from_dict
from serving.fields import check_known_keys, one_of, positive_float, positive_int, required
from serving.lengths import LengthSpec, TraceLengths, lengths_from_dict
from serving.traces import TRACE_FORMATS, Trace, read_trace
from topology.errors import LayerwiseError
from topology.workload import MAX_SEED

FIELD = "workload"


@dataclass(frozen=True)
class ServingWorkload:
    """What requests come: one arrival process, two length distributions, a count or a window
    (``num_requests`` or ``duration_s``; both None only for a whole-trace replay), a seed, and the
    trace the ``trace`` kinds read (already loaded: the workload is a value, it reads no file)."""

    arrivals: ArrivalSpec
    prompt_tokens: LengthSpec
    output_tokens: LengthSpec
    num_requests: int | None = None
    duration_s: float | None = None
    seed: int = 0
    trace: Trace | None = None

    def __post_init__(self) -> None:
        if self.num_requests is not None and self.duration_s is not None:
            raise LayerwiseError(f"{FIELD}.duration_s", "give num_requests or duration_s, not both")
        replay = isinstance(self.arrivals, TraceArrivals)
        if self.num_requests is None and self.duration_s is None and not replay:
            raise LayerwiseError(f"{FIELD}.num_requests", "missing (give num_requests or duration_s)")
        if self.num_requests is not None:
            positive_int(f"{FIELD}.num_requests", self.num_requests)
        if self.duration_s is not None:
            positive_float(f"{FIELD}.duration_s", self.duration_s)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < MAX_SEED:
            raise LayerwiseError(f"{FIELD}.seed", f"must be an integer from 0 to 2**63 - 1, got {self.seed!r}")
        self._check_trace()

    def _check_trace(self) -> None:
        users = [(key, spec) for key, spec in (("arrivals", self.arrivals), ("prompt_tokens", self.prompt_tokens),
                                               ("output_tokens", self.output_tokens))
                 if isinstance(spec, (TraceArrivals, TraceLengths))]
        if users and self.trace is None:
            raise LayerwiseError(f"{FIELD}.trace", f"missing ({users[0][0]} has kind 'trace')")
        if self.trace is None or self.num_requests is None:
            return
        if self.num_requests > len(self.trace):
            raise LayerwiseError(f"{FIELD}.num_requests", f"{self.num_requests} requests asked of a trace of "
                                 f"{len(self.trace)} rows ({self.trace.source})")

    @property
    def closed_loop(self) -> bool:
        return isinstance(self.arrivals, ClosedLoopArrivals)


def serving_workload_from_dict(raw: Any, base_dir: str | Path | None = None) -> ServingWorkload:
    """A serving workload from an experiment file's mapping; a relative trace path is read from
    ``base_dir`` (the experiment file's folder). Bad input raises one ``LayerwiseError`` naming the field."""
    check_known_keys(FIELD, raw, ("phase", "seed", "num_requests", "duration_s", "arrivals", "prompt_tokens",
                                  "output_tokens", "trace"))
    if "phase" in raw:
        one_of(f"{FIELD}.phase", raw["phase"], ("serve",))
    arrivals = arrivals_from_dict(f"{FIELD}.arrivals", required(FIELD, raw, "arrivals"))
    prompt = lengths_from_dict(f"{FIELD}.prompt_tokens", required(FIELD, raw, "prompt_tokens"))
    output = lengths_from_dict(f"{FIELD}.output_tokens", required(FIELD, raw, "output_tokens"))
    trace = _trace_from_dict(raw["trace"], base_dir) if "trace" in raw else None
    num_requests = raw.get("num_requests")
    duration_s = raw.get("duration_s")
    if num_requests is not None:
        positive_int(f"{FIELD}.num_requests", num_requests)
    if duration_s is not None:
        positive_float(f"{FIELD}.duration_s", duration_s)
    return ServingWorkload(arrivals=arrivals, prompt_tokens=prompt, output_tokens=output,
                           num_requests=num_requests, duration_s=None if duration_s is None else float(duration_s),
                           seed=raw.get("seed", 0), trace=trace)


def _trace_from_dict(raw: Any, base_dir: str | Path | None) -> Trace:
    field = f"{FIELD}.trace"
    check_known_keys(field, raw, ("path", "format"))
    path = required(field, raw, "path")
    if not isinstance(path, str) or not path:
        raise LayerwiseError(f"{field}.path", f"must be a file path, got {path!r}")
    trace_format = one_of(f"{field}.format", raw.get("format", "auto"), TRACE_FORMATS)
    resolved = Path(path) if base_dir is None or Path(path).is_absolute() else Path(base_dir) / path
    return read_trace(resolved, trace_format, field)
