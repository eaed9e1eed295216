"""``layerwise search --confirm K``: run the search's top plans for real and compare with the prediction.

Each of the top K ranked plans that fits this machine (its GPU count at most the GPUs present;
on a CPU-only machine, gloo processes, at most ``GLOO_MAX_PROCESSES``) is written as a plan JSON
and run by ``layerwise run EXPERIMENT --plan rankN.plan.json --json rankN.result.json`` (the
executor under torchrun). The results are ordinary measured results (source ``hardware``, the
results schema), so ``layerwise validate DIR`` takes the folder as it is. ``confirm.json`` records
predicted against measured for every plan run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from layerwise.terminal.table import render_table
from sim.search.result import SearchResult
from topology.atomic_io import write_text_atomic
from topology.errors import LayerwiseError
from topology.results import load_result

GLOO_MAX_PROCESSES = 8  # on a CPU-only machine: one gloo process per device of the plan


def devices_present() -> tuple[int, str]:
    """How many devices a plan may use here, and the backend that runs it."""
    try:
        import torch
    except ModuleNotFoundError:
        raise LayerwiseError("--confirm", "running plans needs torch (pip install -e '.[executor]')") from None
    if torch.cuda.is_available():
        return torch.cuda.device_count(), "nccl"
    return GLOO_MAX_PROCESSES, "gloo"


def _run_one(experiment: str, overrides: list[str], plan_file: Path, result_file: Path) -> tuple[int, str]:
    command = [sys.executable, "-m", "layerwise", "run", experiment, "--plan", str(plan_file),
               "--json", str(result_file)]
    for override in overrides:
        command += ["--set", override]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = (completed.stdout + completed.stderr).strip().splitlines()
    return completed.returncode, lines[-1] if lines else ""


def confirm_search(result: SearchResult, experiment: str, overrides: list[str], top: int, out_dir: Path,
                   say: Callable[[str], None]) -> str:
    """Run the top plans that fit; returns the side-by-side table and the verdict."""
    capacity, backend = devices_present()
    chosen = [(rank, c) for rank, c in enumerate(result.ranked[:top], start=1) if c.gpus <= capacity]
    if not chosen:
        return (f"CONFIRM: none of the top {top} plans fits this machine ({capacity} devices, {backend}); "
                f"the smallest needs {min(c.gpus for c in result.ranked[:top])}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for rank, candidate in chosen:
        plan_file, result_file = out_dir / f"rank{rank}.plan.json", out_dir / f"rank{rank}.result.json"
        write_text_atomic(plan_file, candidate.plan.to_json() + "\n")
        say(f"confirm: running #{rank} {candidate.layout.describe()} on {candidate.gpus} devices ({backend})")
        code, last_line = _run_one(experiment, overrides, plan_file, result_file)
        measured = load_result(result_file).metrics.tokens_per_s if code == 0 and result_file.is_file() else None
        runs.append(ConfirmRun(rank, candidate.layout.describe(), candidate.gpus, candidate.prediction.tokens_per_s,
                               measured, None if measured is not None else last_line))
    summary = {"experiment": experiment, "overrides": overrides, "backend": backend,
               "runs": [r.to_dict() for r in runs]}
    write_text_atomic(out_dir / "confirm.json", json.dumps(summary, indent=2) + "\n")
    table = render_table(["#", "plan", "devices", "predicted tokens/s", "measured tokens/s", "error"],
                         [r.row() for r in runs])
    caveat = ("\n(gloo on CPU: a check of the loop; these timings say nothing about the GPUs the predictions are for)"
              if backend == "gloo" else "")
    return f"CONFIRM ({backend}, results in {out_dir}/):\n{table}\n{confirm_verdict(runs)}{caveat}"


@dataclass(frozen=True)
class ConfirmRun:
    """One plan run for real beside its prediction."""

    rank: int
    plan: str
    devices: int
    predicted_tokens_per_s: float
    measured_tokens_per_s: float | None  # None: the run failed
    failure: str | None = None  # its last line of output, when it failed

    @property
    def error(self) -> float | None:
        """predicted / measured - 1."""
        if self.measured_tokens_per_s is None:
            return None
        return self.predicted_tokens_per_s / self.measured_tokens_per_s - 1.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "error": self.error}

    def row(self) -> list[str]:
        head = [str(self.rank), self.plan, str(self.devices), f"{self.predicted_tokens_per_s:,.1f}"]
        if self.measured_tokens_per_s is None or self.error is None:
            return [*head, "failed", (self.failure or "")[:80]]
        return [*head, f"{self.measured_tokens_per_s:,.1f}", f"{self.error:+.1%}"]


def confirm_verdict(runs: list[ConfirmRun]) -> str:
    """Whether the predicted best (the best-ranked plan that ran) was the measured best."""
    ran = [r for r in runs if r.measured_tokens_per_s is not None]
    if not ran:
        return "No plan ran to the end; see the failures above."
    if len(ran) == 1:
        return f"Only #{ran[0].rank} ran: there is no ranking to confirm."
    fastest = max(ran, key=lambda r: r.measured_tokens_per_s or 0.0)
    predicted_best = min(ran, key=lambda r: r.rank)
    if fastest is predicted_best:
        return f"The predicted best of the plans run (#{fastest.rank}) was the measured best."
    return (f"The predicted best of the plans run (#{predicted_best.rank}) was NOT the measured best: "
            f"#{fastest.rank} ran fastest ({fastest.measured_tokens_per_s:,.1f} against "
            f"{predicted_best.measured_tokens_per_s:,.1f} tokens/s).")
