"""One serving run as data, simulated or measured, in one schema (``layerwise-serving-run`` v1):
every request's timestamps and every iteration's batch, with what produced them.

```json
{"schema": "layerwise-serving-run", "schema_version": 1,
 "source": "simulated" | "measured",
 "experiment": {...the experiment file's mapping...}, "plan": {...Plan.to_dict()...},
 "scheduler": {...SchedulerConfig fields...}, "replicas": 1, "router": "round_robin", "pipeline_depth": 1,
 "requests": [{"request_id", "arrival_s", "prompt_tokens", "output_tokens", "status", "first_scheduled_s",
               "token_times_s": [...], "finish_s", "preemptions", "replica", "rejected_because"}],
 "iterations": [{"replica", "iteration", "scheduled_s", "start_s", "end_s", "duration_s", "padded_tokens",
                 "cuda_graph", "preempted_ids": [...], "num_waiting", "num_running", "kv_blocks_used",
                 "items": [[request_id, kind, new_tokens, context_tokens, emits_token], ...],
                 "stage_times_s": [...]}],   # only when the stages' times were given apart (measured)
 "environment": {...device, versions, commit, timing method...}}
```

Times are seconds from the run's start (the first arrival is at its ``arrival_s``). The measured run
and its simulation share this, so ``layerwise validate`` compares them percentile by percentile and a
replay feeds a run's iteration durations back into the scheduler (``serving.replay``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from serving.batch import IterationPlan, PlanItem
from serving.driver import IterationRecord, ServingRun
from serving.requests import RequestRecord, RequestStatus
from serving.scheduler_config import SchedulerConfig
from topology.errors import LayerwiseError, reading

SCHEMA = "layerwise-serving-run"
SCHEMA_VERSION = 1
SOURCES = ("simulated", "measured")


@dataclass(frozen=True)
class ServingRunRecord:
    """A serving run with its context (see the module docstring)."""

    source: str
    experiment: dict[str, Any]
    plan: dict[str, Any]
    scheduler: SchedulerConfig
    run: ServingRun
    router: str = "round_robin"
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "source": self.source,
            "experiment": self.experiment, "plan": self.plan,
            "scheduler": {**dataclasses.asdict(self.scheduler),
                          "cuda_graph_sizes": list(self.scheduler.cuda_graph_sizes)},
            "replicas": self.run.replicas, "router": self.router, "pipeline_depth": self.run.pipeline_depth,
            "requests": [request_to_dict(r) for r in self.run.records],
            "iterations": [iteration_to_dict(i) for i in self.run.iterations],
            "environment": self.environment,
        }


def request_to_dict(r: RequestRecord) -> dict[str, Any]:
    return {"request_id": r.request_id, "arrival_s": r.arrival_s, "prompt_tokens": r.prompt_tokens,
            "output_tokens": r.output_tokens, "status": r.status.value, "first_scheduled_s": r.first_scheduled_s,
            "token_times_s": list(r.token_times_s), "finish_s": r.finish_s, "preemptions": r.preemptions,
            "replica": r.replica, "rejected_because": r.rejected_because}


def iteration_to_dict(i: IterationRecord) -> dict[str, Any]:
    p = i.plan
    return {"replica": i.replica, "iteration": p.iteration, "scheduled_s": p.scheduled_s, "start_s": i.start_s,
            "end_s": i.end_s, "duration_s": i.duration_s, "padded_tokens": p.padded_tokens,
            "cuda_graph": p.cuda_graph, "preempted_ids": list(p.preempted_ids), "num_waiting": i.num_waiting,
            "num_running": i.num_running, "kv_blocks_used": i.kv_blocks_used,
            "items": [[t.request_id, t.kind, t.new_tokens, t.context_tokens, t.emits_token] for t in p.items],
            **({"stage_times_s": list(i.stage_times_s)} if i.stage_times_s else {})}


def _request(raw: dict[str, Any]) -> RequestRecord:
    return RequestRecord(
        request_id=int(raw["request_id"]), arrival_s=float(raw["arrival_s"]), prompt_tokens=int(raw["prompt_tokens"]),
        output_tokens=int(raw["output_tokens"]), status=RequestStatus(raw["status"]),
        first_scheduled_s=None if raw["first_scheduled_s"] is None else float(raw["first_scheduled_s"]),
        token_times_s=tuple(float(t) for t in raw["token_times_s"]),
        finish_s=None if raw["finish_s"] is None else float(raw["finish_s"]), preemptions=int(raw["preemptions"]),
        replica=int(raw.get("replica", 0)), rejected_because=str(raw.get("rejected_because", "")))


def _iteration(raw: dict[str, Any]) -> IterationRecord:
    items = tuple(PlanItem(int(a), str(b), int(c), int(d), bool(e)) for a, b, c, d, e in raw["items"])
    plan = IterationPlan(iteration=int(raw["iteration"]), scheduled_s=float(raw["scheduled_s"]), items=items,
                         padded_tokens=int(raw["padded_tokens"]), cuda_graph=bool(raw["cuda_graph"]),
                         preempted_ids=tuple(int(x) for x in raw.get("preempted_ids", ())))
    return IterationRecord(replica=int(raw["replica"]), plan=plan, start_s=float(raw["start_s"]),
                           end_s=float(raw["end_s"]), duration_s=float(raw["duration_s"]),
                           num_waiting=int(raw["num_waiting"]), num_running=int(raw["num_running"]),
                           kv_blocks_used=int(raw["kv_blocks_used"]),
                           stage_times_s=tuple(float(t) for t in raw.get("stage_times_s", ())))


def serving_record_from_dict(raw: Any, origin: str = "serving run") -> ServingRunRecord:
    """A record written by :meth:`ServingRunRecord.to_dict`; one ``LayerwiseError`` naming what is wrong."""
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise LayerwiseError(origin, f"not a serving run (schema {SCHEMA!r} expected)")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise LayerwiseError(f"{origin}.schema_version", f"{raw.get('schema_version')!r} is not supported "
                                                         f"(this layerwise reads {SCHEMA_VERSION})")
    if raw.get("source") not in SOURCES:
        raise LayerwiseError(f"{origin}.source", f"must be one of {', '.join(SOURCES)}, got {raw.get('source')!r}")
    with reading(origin):
        scheduler_raw = dict(raw["scheduler"])
        scheduler_raw["cuda_graph_sizes"] = tuple(scheduler_raw.get("cuda_graph_sizes", ()))
        scheduler = SchedulerConfig(**scheduler_raw)
        run = ServingRun(records=tuple(_request(r) for r in raw["requests"]),
                         iterations=tuple(_iteration(i) for i in raw["iterations"]), samples=(),
                         replicas=int(raw.get("replicas", 1)), pipeline_depth=int(raw.get("pipeline_depth", 1)))
        return ServingRunRecord(source=str(raw["source"]), experiment=dict(raw["experiment"]),
                                plan=dict(raw["plan"]), scheduler=scheduler, run=run,
                                router=str(raw.get("router", "round_robin")),
                                environment=dict(raw.get("environment", {})))
