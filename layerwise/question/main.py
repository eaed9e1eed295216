"""``layerwise`` with no arguments: the seed's question, answered by searching every case.

Runs the cases of :mod:`layerwise.question.cases` in parallel over local cores (each a plan
search whose finalists are simulated event by event), then prints one table block per case and
the verdict. The cost model is the shipped H100 profile (calibrated on one H100 and fitted to
measured runs, with held-out error by regime) unless ``--profile`` names another or
``--datasheet`` asks for the data files' numbers alone.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from layerwise.question.cases import CLUSTERS, EXPERIMENT, MODELS, CaseResult, Job, main_cases, run_case
from layerwise.question.table import render_case
from layerwise.question.verdict import verdict
from layerwise.terminal import interrupts
from sim.inputs import ProfileChoice
from sim.parallel import map_parallel
from sim.search.options import SearchOptions
from sim.search.result import search_result_to_dict
from topology.atomic_io import json_text, metadata_block, write_text_atomic

TOP_K = 10


def run_main_job(choice: ProfileChoice, overrides: tuple[str, ...], jobs: int,
                 twin_only: bool) -> tuple[str, list[CaseResult]]:
    """The main job's text and its case results."""
    started = time.perf_counter()
    options = replace(SearchOptions(top_k=TOP_K), events=not twin_only)
    cases = main_cases()
    jobs_list: list[Job] = [(case, overrides, choice, options) for case in cases]

    def progress(done: int, total: int, _: CaseResult) -> None:
        interrupts.check()
        print(f"[main job] {done}/{total} cases searched ({time.perf_counter() - started:.1f} s)", file=sys.stderr,
              flush=True)

    # one model's cases on one worker: they share its layer graphs and priced operators
    chunk = len(CLUSTERS) if jobs < len(cases) else 1
    results = map_parallel(run_case, jobs_list, jobs, progress, chunksize=chunk)
    estimator = "the closed-form twin only (--analytic)" if twin_only else "event simulation of every plan shown"
    labels = sorted({r.search.parameters for r in results if r.search is not None})
    profile_label = "; ".join(labels) or "none (no case ran)"
    changed = f" with --set {' '.join(overrides)} (so the paper's figures are not shown)" if overrides else ""
    header = (f"The seed's question{changed}: which plan is fastest for {MODELS[0]} (and {MODELS[1]}) on 16 x H100, "
              f"and does layer-wise partitioning beat TP=8 x PP=2 (the paper: 12,800 -> 15,360 tokens/s)? "
              f"Experiment {EXPERIMENT}: decode, batch 128, context 10000, BF16. Cost model: {profile_label}; "
              f"{estimator}. Every family is shown at its best (TP, PP, microbatches tuned), beside the paper's "
              "plans exactly as stated.")
    blocks = [header, *(render_case(r) for r in results), verdict(results)]
    searched = sum(len(r.search.ranked) + len(r.search.over_limits) for r in results if r.search is not None)
    blocks.append(f"({len(results)} searches, {searched} plans simulated event by event, "
                  f"{time.perf_counter() - started:.2f} s wall)")
    return "\n\n".join(blocks), results


def main_job_json(results: list[CaseResult], path: str) -> None:
    """``{"cases": [...], "metadata": {...}}``: the cases are the same for the same inputs; the wall times
    (the whole job's and each search's) are in the metadata block."""
    cases = [{"model": r.case.model, "cluster": r.case.cluster, "error": r.error,
              "search": search_result_to_dict(r.search) if r.search is not None else None} for r in results]
    metadata = metadata_block(sum(r.wall_s for r in results))
    metadata["case_wall_s"] = [r.wall_s for r in results]
    write_text_atomic(path, json_text({"cases": cases, "metadata": metadata}))
