"""The benchmark's goals (issue 15), its Markdown tables and its JSON record.

Goals, single GPU under CUDA graphs: decode at least 95% of the minimal reference's speed
(``reference step / executor step``) on every case, and at least 90% of the HBM floor wherever the
step moves more than 1 GB; prefill at least 80% of the measured matmul rate for prompts of 4k
tokens or more. Eager cases and shorter prompts are reported without a goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from executor_bench.floor import Rates
from executor_bench.measure import CaseResult
from layerwise.terminal.table import render_table

REFERENCE_GOAL = 0.95
FLOOR_GOAL = 0.90
FLOOR_GOAL_MIN_BYTES = 1e9
PREFILL_GOAL = 0.80
PREFILL_GOAL_MIN_PROMPT = 4096


@dataclass(frozen=True)
class Verdict:
    """One goal on one case: ``met`` is None when the goal does not apply or cannot be judged."""

    goal: str
    value: float | None
    target: float
    met: bool | None

    def label(self) -> str:
        if self.met is None:
            return "-"
        return "ok" if self.met else f"MISS {self.goal}"


def of_reference(result: CaseResult) -> float | None:
    if result.step_s and result.reference_step_s:
        return result.reference_step_s / result.step_s
    return None


def of_floor(result: CaseResult) -> float | None:
    if result.step_s and result.floor is not None and result.floor.floor_s:
        return result.floor.floor_s / result.step_s
    return None


def verdicts(result: CaseResult) -> list[Verdict]:
    """The goals that apply to a measured case (an unmeasurable one -- no rate -- is ``met=None``)."""
    case = result.case
    if result.status != "ok" or (case.phase == "decode" and not result.graphs_used):
        return []
    if case.phase == "prefill":
        if case.tokens < PREFILL_GOAL_MIN_PROMPT:
            return []
        value = of_floor(result)
        return [Verdict("matmul", value, PREFILL_GOAL, None if value is None else value >= PREFILL_GOAL)]
    ref = of_reference(result)
    out = [Verdict("reference", ref, REFERENCE_GOAL, None if ref is None else ref >= REFERENCE_GOAL)]
    if result.floor is not None and result.floor.bytes_per_gpu > FLOOR_GOAL_MIN_BYTES:
        value = of_floor(result)
        out.append(Verdict("floor", value, FLOOR_GOAL, None if value is None else value >= FLOOR_GOAL))
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.3f}"


def _paths(result: CaseResult) -> str:
    """The path that ran per phase; a measured choice lists every candidate's time (us per call)."""
    parts = []
    for choice in result.attention:
        times = choice["times_s"]
        detail = ", ".join(f"{path} {t * 1e6:.0f}" for path, t in times.items()) if times else choice["how"]
        parts.append(f"{choice['path']} ({detail})")
    return "; ".join(parts) or "-"


def attention_share(result: CaseResult) -> float | None:
    """Layers x the chosen path's time per call (measured apart, at start-up) over the step: roughly
    how much of the step attention takes; None when the path was not measured."""
    for choice in result.attention:
        if choice["phase"] == result.case.phase and choice["path"] in choice["times_s"] and result.step_s:
            return result.case.layer.num_layers * choice["times_s"][choice["path"]] / result.step_s
    return None


def _shape(result: CaseResult) -> str:
    layer = result.case.layer
    return f"h{layer.hidden_size} {layer.num_heads}/{layer.num_kv_heads}x{layer.head_dim} L{layer.num_layers}"


def _goal(result: CaseResult) -> str:
    if result.status != "ok":
        return f"{result.status}: {result.message}"
    return ", ".join(v.label() for v in verdicts(result)) or "-"


DECODE_HEADER = ["case", "layers", "batch", "context", "step ms", "reference ms", "of reference", "GB/step",
                 "floor ms", "of floor", "attention path (candidates, us/call)", "goals"]
PREFILL_HEADER = ["case", "layers", "batch", "prompt", "step ms", "TFLOP/step", "floor ms", "of matmul rate",
                  "attention path (candidates, us/call)", "goals"]
SHORT_HEADER = ["case", "step ms", "of reference", "of floor / matmul", "goals"]


def decode_rows(results: list[CaseResult]) -> list[list[str]]:
    return [[r.case.name, _shape(r), str(r.case.batch), str(r.case.tokens), _ms(r.step_s), _ms(r.reference_step_s),
             _pct(of_reference(r)), "-" if r.floor is None else f"{r.floor.bytes_per_gpu / 1e9:.2f}",
             _ms(r.floor.floor_s if r.floor else None), _pct(of_floor(r)), _paths(r), _goal(r)] for r in results]


def prefill_rows(results: list[CaseResult]) -> list[list[str]]:
    return [[r.case.name, _shape(r), str(r.case.batch), str(r.case.tokens), _ms(r.step_s),
             "-" if r.floor is None else f"{r.floor.flops_per_gpu / 1e12:.2f}",
             _ms(r.floor.floor_s if r.floor else None), _pct(of_floor(r)), _paths(r), _goal(r)] for r in results]


def short_rows(results: list[CaseResult]) -> list[list[str]]:
    return [[r.case.name, _ms(r.step_s), _pct(of_reference(r)), _pct(of_floor(r)), _goal(r)] for r in results]


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _groups(results: list[CaseResult]) -> tuple[list[CaseResult], list[CaseResult], list[CaseResult]]:
    graph = [r for r in results if r.case.phase == "decode" and r.case.graphs]
    eager = [r for r in results if r.case.phase == "decode" and not r.case.graphs]
    prefill = [r for r in results if r.case.phase == "prefill"]
    return graph, eager, prefill


def goal_summary(results: list[CaseResult]) -> list[str]:
    """One line per goal: how many cases met it, and each miss with its numbers."""
    lines = []
    for goal, target in (("reference", REFERENCE_GOAL), ("floor", FLOOR_GOAL), ("matmul", PREFILL_GOAL)):
        judged = [(r, v) for r in results for v in verdicts(r) if v.goal == goal]
        met = [r for r, v in judged if v.met]
        unjudged = [r for r, v in judged if v.met is None]
        misses = [(r, v) for r, v in judged if v.met is False]
        line = f"- **{goal} >= {target:.0%}**: met on {len(met)} of {len(judged)} cases"
        if unjudged:
            line += f" ({len(unjudged)} without a rate to judge by)"
        lines.append(line + ("." if not misses else ":"))
        lines += [f"  - MISS {r.case.name}: {v.value:.1%} (step {_ms(r.step_s)} ms, reference "
                  f"{_ms(r.reference_step_s)} ms, floor {_ms(r.floor.floor_s if r.floor else None)} ms; "
                  f"attention {_paths(r)}, about {_pct(attention_share(r))} of the step)" for r, v in misses]
    not_ok = [r for r in results if r.status != "ok"]
    lines += [f"- {r.case.name}: {r.status}: {r.message}" for r in not_ok]
    return lines


def render_markdown(results: list[CaseResult], rates: Rates, header_lines: list[str]) -> str:
    graph, eager, prefill = _groups(results)
    parts = [*header_lines, "",
             f"Rates: {rates.source}; HBM {_rate(rates.hbm_bw_bytes_per_s, 1e12, 'TB/s')}, "
             f"matmul {_rate(rates.matmul_flops_per_s, 1e12, 'TFLOP/s')}.", ""]
    if graph:
        parts += ["## Decode, CUDA graphs", "", _markdown_table(DECODE_HEADER, decode_rows(graph)), ""]
    if prefill:
        parts += ["## Prefill (eager)", "", _markdown_table(PREFILL_HEADER, prefill_rows(prefill)), ""]
    if eager:
        parts += ["## Decode, eager (no goal)", "", _markdown_table(DECODE_HEADER, decode_rows(eager)), ""]
    parts += ["## Goals", "", *goal_summary(results), ""]
    return "\n".join(parts)


def _rate(value: float | None, scale: float, unit: str) -> str:
    return "unknown" if value is None else f"{value / scale:.2f} {unit}"


def render_short(results: list[CaseResult]) -> str:
    return render_table(SHORT_HEADER, short_rows(results))


def result_record(result: CaseResult) -> dict[str, Any]:
    """Every number of one case, for the JSON."""
    case, floor = result.case, result.floor
    return {
        "name": case.name, "layer": vars(case.layer) | {"group_size": case.layer.group_size},
        "phase": case.phase, "batch": case.batch, "tokens": case.tokens, "graphs_requested": case.graphs,
        "graphs_used": result.graphs_used, "status": result.status, "message": result.message,
        "warmup_iters": result.iterations.warmup if result.iterations else None,
        "measured_iters": result.iterations.measured if result.iterations else None,
        "step_s": result.step_s, "reference_step_s": result.reference_step_s,
        "of_reference": of_reference(result),
        "floor_bytes": floor.bytes_per_gpu if floor else None, "floor_flops": floor.flops_per_gpu if floor else None,
        "floor_s": floor.floor_s if floor else None, "of_floor": of_floor(result),
        "attention": result.attention, "attention_share": attention_share(result),
        "goals": [{"goal": v.goal, "value": v.value, "target": v.target, "met": v.met} for v in verdicts(result)],
        "wall_s": result.wall_s,
    }
