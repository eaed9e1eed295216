"""A serving run as a Chrome/Perfetto trace (pure: JSON-ready events, simulated or measured runs alike).

One process per replica: a track of iterations (a slice each, named by its composition: ``12 decode +
1 prefill (512 tok)``) and counters sampled at every iteration start: running and waiting requests,
KV blocks in use, and the batch (sequences and tokens). Times in microseconds, as the format wants.
"""

from __future__ import annotations

from typing import Any

from serving.batch import DECODE
from serving.driver import IterationRecord, ServingRun

US_PER_S = 1e6


def _label(record: IterationRecord) -> str:
    plan = record.plan
    decodes = sum(1 for item in plan.items if item.kind == DECODE)
    prefills = plan.num_seqs - decodes
    text = f"{decodes} decode" + (f" + {prefills} prefill ({plan.prefill_tokens} tok)" if prefills else "")
    return text + (" [graph]" if plan.cuda_graph else "")


def _counter(pid: int, name: str, time_s: float, value: float) -> dict[str, Any]:
    return {"ph": "C", "pid": pid, "name": name, "ts": time_s * US_PER_S, "args": {name: value}}


def serving_trace_events(run: ServingRun, label: str, kv_blocks_total: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for replica in range(run.replicas):
        events.append({"ph": "M", "name": "process_name", "pid": replica, "tid": 0,
                       "args": {"name": f"{label}: replica {replica}"}})
        events.append({"ph": "M", "name": "thread_name", "pid": replica, "tid": 0, "args": {"name": "iterations"}})
    for record in run.iterations:
        pid, plan = record.replica, record.plan
        events.append({"ph": "X", "pid": pid, "tid": 0, "name": _label(record), "cat": "iteration",
                       "ts": record.start_s * US_PER_S, "dur": (record.end_s - record.start_s) * US_PER_S,
                       "args": {"iteration": plan.iteration, "sequences": plan.num_seqs, "tokens": plan.num_tokens,
                                "padded_tokens": plan.padded_tokens, "duration_s": record.duration_s,
                                "preempted": list(plan.preempted_ids)}})
        events += [
            _counter(pid, "running requests", record.start_s, record.num_running),
            _counter(pid, "waiting requests", record.start_s, record.num_waiting),
            _counter(pid, "KV cache used (fraction)", record.start_s,
                     record.kv_blocks_used / kv_blocks_total if kv_blocks_total else 0.0),
            _counter(pid, "batch sequences", record.start_s, plan.num_seqs),
            _counter(pid, "batch tokens", record.start_s, plan.num_tokens),
        ]
    return events


def serving_trace(run: ServingRun, label: str, kv_blocks_total: int) -> dict[str, Any]:
    return {"traceEvents": serving_trace_events(run, label, kv_blocks_total), "displayTimeUnit": "ms"}
