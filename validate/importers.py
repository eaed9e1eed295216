"""Importers: another executor's files turned into the imported-runs format (``topology.imported``).

One layout is known today, the reference executor's closed-loop decode runs
(``shared/measurements/h200x4/runs.json``, described by the ``README.md`` beside it): a
``description``, a ``node`` (``gpus``, ``gpu``, ``torch``, ``measured_utc_date``), ``runs`` (each a
``model``, a ``workload``, a ``plan`` and ``step_time_s``) and eager ``collectives``. What the
README says about how the runs executed and were timed is written into the imported file, so that it
travels with the numbers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from topology.datafile import load_json_file
from topology.errors import LayerwiseError, reading
from topology.imported import ImportedRun, ImportedRuns

REFERENCE_EXECUTION = {
    "cuda_graphs": True,
    "graphs": "one CUDA graph per microbatch per stage, holding the stage's layers",
    "collectives": "TP all-reduces (two per layer, after the output projection and after the MLP) captured "
                   "inside the CUDA graphs",
    "stage_handover": "outside the graphs: a blocking dist.recv of the input, the graph replay, then a "
                      "dist.isend of the output, waited on before that buffer is reused; TP rank i talks to "
                      "TP rank i of the next stage",
    "closed_loop": "the last stage sends each microbatch's output back to stage 0; stage 0 starts microbatch m "
                   "of step t only after (t-1, m) has returned",
    "model": "pre-norm RMSNorm, fused QKV, scaled_dot_product_attention over a pre-filled KV cache of "
             "context_len tokens, output projection, gated SiLU MLP; no embedding and no LM head; heads = KV heads",
}
REFERENCE_TIMING = {"method": "wall clock over the measured steps after warm-up steps and a barrier, divided by "
                              "the steps", "quantity": "step_time_s: one closed-loop decode step (every "
                                                       "sequence one token)"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_name(run: dict[str, Any]) -> str:
    m, w, p = run["model"], run["workload"], run["plan"]
    return (f"h{m['hidden_size']}-b{w['batch_size']}-c{w['context_len']}-tp{p['tp']}-pp{p['pp']}"
            f"-mb{p['microbatches']}")


def import_reference_runs(path: str | Path, name: str) -> ImportedRuns:
    """The reference executor's ``runs.json`` as imported runs (its README beside it is cited)."""
    source = Path(path)
    raw = load_json_file(source, "source")
    if not isinstance(raw, dict) or "runs" not in raw or "node" not in raw:
        raise LayerwiseError("source", f"{str(source)!r} is not a reference-executor runs file (no 'runs' and "
                                       "'node')")
    with reading("source"):
        node = dict(raw["node"])
        runs = []
        for entry in raw["runs"]:
            model = {k: entry["model"][k] for k in ("hidden_size", "num_heads", "num_kv_heads", "head_dim",
                                                   "mlp_hidden_size", "gated_mlp", "num_layers", "dtype")}
            workload = dict(entry["workload"])
            plan = {k: int(entry["plan"][k]) for k in ("tp", "pp", "microbatches")}
            if int(entry["plan"].get("gpus", plan["tp"] * plan["pp"])) != plan["tp"] * plan["pp"]:
                raise LayerwiseError(f"source.runs.{_run_name(entry)}.plan.gpus",
                                     f"{entry['plan']['gpus']} is not tp x pp")
            runs.append(ImportedRun(name=_run_name(entry), model=model, workload=workload, plan=plan,
                                    step_time_s=float(entry["step_time_s"])))
    readme = source.with_name("README.md")
    origin = {"file": str(source), "sha256": _sha256(source), "readme": str(readme) if readme.is_file() else None,
              "executor": "a minimal reference executor written independently of layerwise (not ours)",
              "description": str(raw.get("description", "")), "measured_utc_date": node.get("measured_utc_date")}
    return ImportedRuns(name=name, origin=origin,
                        node={"gpu": node.get("gpu"), "gpus": node.get("gpus"), "links": "NVLink, one host",
                              "backend": "nccl", "torch": node.get("torch")},
                        execution=dict(REFERENCE_EXECUTION), timing=dict(REFERENCE_TIMING), runs=tuple(runs),
                        extra={"collectives": raw.get("collectives", {})})
