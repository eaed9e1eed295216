"""Serving runs on one GPU (issue 23, item 6): the serving executor at low, medium and
near-saturation Poisson load, short and long prompts, chunking on (policy vllm) and off
(prefill-first), two model sizes (llama3-8b and small-1024), plus the host cost per iteration.

    python benchmarks/device/serving_study.py --out DIR [--device auto|cuda|cpu] [--wall-s S] [--only REGEX]

Writes under ``DIR/serving/``: ``<case>.json`` (a ``layerwise-serving-run`` record, source "measured":
plan, experiment, scheduler, versions, device, commit and timing method in its environment) beside
``<case>.yaml`` (the experiment it ran: ``layerwise simulate`` predicts it), ``host-profile.json`` (a
profile whose ``sim_params.serving_iteration_host_s`` is this GPU's host cost per iteration) and
``summary.json`` (every case's status, rewritten as it goes); prints a short table last.

Each model's load is set from its measured capacity: a probe (requests arriving all at once) gives
the finished requests per second at saturation, and the cases run at 0.3, 0.6 and 0.9 of it, with
as many requests as fill about ``--case-s`` seconds (at most ``--max-requests``). Every case runs
in its own try/except (a failure is logged with its reason and the next case runs); no case starts
past the wall budget, and each has a deadline on the run's clock. Every record is replayed
(``serving.replay``) and the verdict kept in the summary. ``--device cpu`` (or no GPU) is a dry run
of the same flow on the tiny model with a handful of requests (the test in
``tests/executor/test_exec_serving_study.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: executor, serving, topology

import torch

from executor.calibrate.run import CalibrationRequest, calibrate
from executor.serving.session import PreparedRank, ServingOptions, geometry, prepare_in_process, serve_in_process
from executor.serving.stage import ServingWeights
from serving.latency import serving_metrics
from serving.replay import replay_record
from serving.setup import ServingSetup, serving_setup_from_dict
from topology.atomic_io import write_json_atomic, write_text_atomic
from topology.experiment import build_plan
from topology.hardware import gpu_preset_for_device
from topology.plan import Plan

LOADS = (("low", 0.3), ("medium", 0.6), ("high", 0.9))
# the rate ladder around saturation for the measured capacity under an SLO (issue 24): with low, medium
# and high, the big model's short prompts run at 0.3, 0.6, 0.75, 0.9, 1.0 and 1.1 of the probe's capacity
LADDER = (("l75", 0.75), ("l100", 1.0), ("l110", 1.1))
SHARES = dict(LOADS + LADDER)


@dataclass(frozen=True)
class Shape:
    """A model's serving set-up on this device: the model, its scheduler's geometry, its lengths."""

    model: str
    num_blocks: int
    max_num_seqs: int
    max_model_len_tokens: int
    max_num_batched_tokens: int
    short: tuple[tuple[int, int], tuple[int, int]]  # (prompt low, high), (output low, high) tokens
    long: tuple[tuple[int, int], tuple[int, int]]
    probe_requests: int


GPU_SHAPES = (
    Shape("llama3-8b", 12288, 64, 4096, 8192, ((64, 512), (32, 256)), ((1024, 3072), (32, 256)), 96),
    Shape("small-1024", 8192, 64, 4096, 8192, ((64, 512), (32, 256)), ((1024, 3072), (32, 256)), 128),
)
CPU_SHAPES = (
    Shape("tiny-test", 48, 6, 128, 128, ((4, 24), (2, 8)), ((40, 90), (2, 8)), 10),
    Shape("tiny-mha", 48, 6, 128, 128, ((4, 24), (2, 8)), ((40, 90), (2, 8)), 10),
)
TINY_MHA = {"name": "tiny-mha", "num_layers": 2, "hidden_size": 64, "num_heads": 4, "num_kv_heads": 4,
            "head_dim": 16, "mlp_hidden_size": 128, "vocab_size": 256, "dtype_bytes": 4}


@dataclass(frozen=True)
class Case:
    """One serving run: a model's shape, prompt lengths, policy, and a load (a share of capacity;
    None: the capacity probe itself)."""

    shape: Shape
    lengths: str  # short | long
    policy: str  # vllm | prefill-first
    load: str  # probe | low | medium | high | a LADDER step

    @property
    def name(self) -> str:
        return f"{self.shape.model}-{self.lengths}-{self.policy}-{self.load}"


def _say(message: str) -> None:
    print(f"[serving-study] {message}", file=sys.stderr, flush=True)


def plan_cases(shapes: tuple[Shape, ...]) -> list[Case]:
    """In priority order: the big model's short-prompt loads, the small model's, long prompts, chunking off."""
    big, small = shapes
    return [Case(big, "short", "vllm", "probe"), *(Case(big, "short", "vllm", load) for load, _ in LOADS),
            Case(small, "short", "vllm", "probe"), Case(big, "short", "vllm", "l100"),
            Case(small, "short", "vllm", "low"),
            Case(small, "short", "vllm", "high"),
            Case(big, "long", "vllm", "probe"), Case(big, "long", "vllm", "medium"),
            Case(big, "long", "prefill-first", "medium"), Case(big, "short", "prefill-first", "high"),
            *(Case(big, "short", "vllm", load) for load, _ in LADDER if load != "l100")]


def experiment(case: Case, cluster: str, rate_per_s: float, num_requests: int, seed: int) -> dict[str, Any]:
    shape = case.shape
    prompt, output = shape.short if case.lengths == "short" else shape.long
    return {
        "name": case.name,
        "description": f"serving study (issue 23): {shape.model}, {case.lengths} prompts, {case.policy}, "
                       f"{case.load} load",
        "model": TINY_MHA if shape.model == "tiny-mha" else shape.model,
        "cluster": cluster,
        "workload": {"phase": "serve", "seed": seed, "num_requests": num_requests,
                     "arrivals": {"kind": "poisson", "rate_per_s": rate_per_s},
                     "prompt_tokens": {"kind": "uniform", "low_tokens": prompt[0], "high_tokens": prompt[1]},
                     "output_tokens": {"kind": "uniform", "low_tokens": output[0], "high_tokens": output[1]}},
        "scheduler": {"policy": case.policy, "max_num_batched_tokens": shape.max_num_batched_tokens,
                      "max_num_seqs": shape.max_num_seqs, "block_size_tokens": 16, "num_blocks": shape.num_blocks,
                      "max_model_len_tokens": shape.max_model_len_tokens, "cuda_graph_sizes": "auto"},
        "plans": {"tp1": {"partitioner": "tp-pp", "tp": 1, "pp": 1, "microbatches": 1}},
    }


def _yaml_text(raw: dict[str, Any]) -> str:
    try:
        import yaml

        return str(yaml.safe_dump(raw, sort_keys=False))
    except ImportError:  # JSON is YAML too
        return json.dumps(raw, indent=2) + "\n"


class Study:
    """The state of one study: where it writes, the clock, the models built so far."""

    def __init__(self, out: Path, device: torch.device, cluster: str, args: argparse.Namespace) -> None:
        self.out, self.device, self.cluster, self.args = out, device, cluster, args
        self.started = time.perf_counter()
        self.summary: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda"
                                        else "cpu", "torch": torch.__version__, "cluster": cluster,
                                        "cases": {}, "capacity_requests_per_s": {}}
        self.weights: dict[str, ServingWeights] = {}
        self.prepared: dict[tuple[object, ...], PreparedRank] = {}
        self.capacity: dict[tuple[str, str], float] = {}

    def left_s(self) -> float:
        return self.args.wall_s - (time.perf_counter() - self.started)

    def save(self) -> None:
        write_json_atomic(self.out / "summary.json", self.summary)

    def record_case(self, name: str, entry: dict[str, Any]) -> None:
        self.summary["cases"][name] = entry
        self.save()

    # --- one case ---------------------------------------------------------------------------------

    def load_for(self, case: Case) -> tuple[float, int]:
        """(rate per second, requests) of a case: the probe arrives all at once; a load is a share of
        the probe's measured capacity, with about --case-s seconds of requests."""
        if case.load == "probe":
            return 1000.0, case.shape.probe_requests
        capacity = self.capacity.get((case.shape.model, case.lengths))
        if capacity is None:
            raise RuntimeError(f"no capacity measured for {case.shape.model} with {case.lengths} prompts "
                               f"(its probe did not run)")
        share = SHARES[case.load]
        rate = round(share * capacity, 6)
        requests = int(min(self.args.max_requests, max(self.args.min_requests, round(rate * self.args.case_s))))
        return rate, requests

    def run(self, case: Case) -> dict[str, Any]:
        rate, requests = self.load_for(case)
        expected_s = requests / rate + 10.0  # arrivals, then the last requests' drain
        if expected_s > self.left_s() - 5.0:
            return {"status": "not run", "reason": f"wall budget: needs about {expected_s:.0f} s, "
                                                   f"{self.left_s():.0f} s left"}
        raw = experiment(case, self.cluster, rate, requests, self.args.seed)
        setup = serving_setup_from_dict(raw)
        plan = build_plan(setup.experiment, "tp1")
        deadline_s = max(10.0, min(4.0 * expected_s + 20.0, self.left_s() - 5.0))
        options = ServingOptions(deadline_s=deadline_s)
        prepared = self.prepare(setup, plan, case, options)
        began = time.perf_counter()
        result = serve_in_process(setup, plan, "tp1", self.device, options, prepared=prepared)
        wall_s = time.perf_counter() - began
        write_text_atomic(self.out / f"{case.name}.yaml", _yaml_text(raw))
        write_text_atomic(self.out / f"{case.name}.json", json.dumps(result.record.to_dict()) + "\n")
        comparison = replay_record(result.record)
        metrics = serving_metrics(result.run.records, num_gpus=1, samples=result.run.samples)
        if case.load == "probe":
            self.capacity[(case.shape.model, case.lengths)] = metrics.throughput.requests_per_s
            self.summary["capacity_requests_per_s"][f"{case.shape.model}/{case.lengths}"] = \
                metrics.throughput.requests_per_s
        env = result.record.environment["serving"]
        return {"status": "ok", "wall_s": wall_s, "rate_per_s": rate, "requests": requests,
                "finished": metrics.finished, "rejected": metrics.rejected, "preemptions": metrics.preemptions,
                "iterations": len(result.run.iterations),
                "requests_per_s": metrics.throughput.requests_per_s,
                "output_tokens_per_s": metrics.throughput.output_tokens_per_s,
                "ttft_s": _percentiles(metrics.ttft), "tpot_s": _percentiles(metrics.tpot),
                "e2e_s": _percentiles(metrics.e2e), "stable": metrics.stability.stable,
                "replay": comparison.describe(), "replay_identical": comparison.identical,
                "attention": env["attention"]["path"], "graphs": env["cuda_graphs"],
                "host_s_per_iteration": env["host_s_per_iteration"]}

    def prepare(self, setup: ServingSetup, plan: Plan, case: Case, options: ServingOptions) -> PreparedRank:
        """The model's weights once, a rank (KV pool, graphs) once per scheduler geometry."""
        model = case.shape.model
        config = setup.scheduler_for(plan)
        key = (model, *geometry(config))
        if key in self.prepared:  # both models stay (llama3-8b: 18 GB of weights, 28 GB of KV pages)
            return self.prepared[key]
        if model not in self.weights:
            began = time.perf_counter()
            prepared = prepare_in_process(setup, plan, self.device, options)
            self.weights[model] = prepared.rank.stage.weights
            _say(f"{model}: weights and KV pool ready in {time.perf_counter() - began:.1f} s")
        else:
            prepared = prepare_in_process(setup, plan, self.device, options, self.weights[model])
        selection = prepared.selection
        _say(f"{model}: attention {selection.path} ({selection.how}; {selection.checks}); graphs "
             f"{sorted(prepared.rank.graphs.graphs) if prepared.rank.graphs else 'none'}")
        self.prepared[key] = prepared
        return prepared


def _percentiles(summary: Any) -> dict[str, float] | None:
    if summary is None:
        return None
    return {"p50": summary.p50_s, "p90": summary.p90_s, "p99": summary.p99_s, "mean": summary.mean_s}


def host_cost(study: Study) -> None:
    """The host cost per iteration (``layerwise calibrate --only serving-host``), as a profile."""
    began = time.perf_counter()
    try:
        profile = calibrate(CalibrationRequest(out=str(study.out / "host-profile.json"), quick=True,
                                               device=study.device.type, only="serving-host", seed=study.args.seed,
                                               command="benchmarks/device/serving_study.py"))
        value = profile.params.sim_params.get("serving_iteration_host_s")
        entry: dict[str, Any] = {"status": "ok" if value is not None else "failed",
                                 "serving_iteration_host_s": value, "wall_s": time.perf_counter() - began}
        if value is None:
            entry["reason"] = str((profile.raw.get("serving-host") or {}).get("error", "no value"))
    except Exception as exc:  # the cases still run
        entry = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}", "wall_s": time.perf_counter() - began}
    study.summary["host_cost"] = entry
    study.save()
    _say(f"host cost: {entry}")


def table(study: Study) -> str:
    rows = [f"{'case':<40}{'req':>5}{'rate/s':>8}{'done':>6}{'TTFT p50/p99 ms':>18}{'TPOT p50/p99 ms':>18}"
            f"{'E2E p50 s':>10}{'iters':>7}  replay / status"]
    for name, entry in study.summary["cases"].items():
        if entry.get("status") != "ok":
            rows.append(f"{name:<40}  {entry.get('status')}: {str(entry.get('reason', ''))[:70]}")
            continue

        def pair(key: str, entry: dict[str, Any] = entry) -> str:
            value = entry[key]
            return "-" if value is None else f"{value['p50'] * 1e3:.1f}/{value['p99'] * 1e3:.1f}"

        e2e = "-" if entry["e2e_s"] is None else f"{entry['e2e_s']['p50']:.2f}"
        rows.append(f"{name:<40}{entry['requests']:>5}{entry['rate_per_s']:>8.2f}{entry['finished']:>6}"
                    f"{pair('ttft_s'):>18}{pair('tpot_s'):>18}{e2e:>10}{entry['iterations']:>7}  "
                    f"{'identical' if entry['replay_identical'] else 'DIFFERS'}")
    host = study.summary.get("host_cost", {})
    value = host.get("serving_iteration_host_s")
    rows.append(f"host cost per iteration: {value * 1e6:.1f} us" if value else f"host cost: {host}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder; records go to OUT/serving/")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--only", default=None, help="regular expression on case names")
    parser.add_argument("--wall-s", type=float, default=360.0, help="start no case after this (default 360)")
    parser.add_argument("--case-s", type=float, default=25.0, help="seconds of arrivals per case (default 25)")
    parser.add_argument("--max-requests", type=int, default=400)
    parser.add_argument("--min-requests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true", help="the CPU flow on the tiny model (same as --device cpu)")
    args = parser.parse_args(argv)
    cuda = args.device != "cpu" and not args.dry_run and torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        print("serving_study: error: --device cuda but no CUDA GPU is visible", file=sys.stderr)
        return 2
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    shapes = GPU_SHAPES if cuda else CPU_SHAPES
    if not cuda:
        args = argparse.Namespace(**{**vars(args), "case_s": min(args.case_s, 0.05), "max_requests": 8,
                                     "min_requests": 4})
    cluster = "h100x1"
    if cuda:
        torch.cuda.set_device(device)
        preset = gpu_preset_for_device(torch.cuda.get_device_name(device))
        cluster = f"{preset.split('-')[0]}x1" if preset else "h100x1"
    out = Path(args.out) / "serving"
    out.mkdir(parents=True, exist_ok=True)
    study = Study(out, device, cluster, args)
    _say(f"{study.summary['device']} (cluster {cluster}), torch {torch.__version__}, wall budget {args.wall_s:g} s")
    host_cost(study)
    only = re.compile(args.only) if args.only else None
    for case in plan_cases(shapes):
        if only is not None and not only.search(case.name):
            continue
        if study.left_s() < 15.0:
            study.record_case(case.name, {"status": "not run", "reason": "wall budget"})
            continue
        began = time.perf_counter()
        try:
            entry = study.run(case)
        except Exception as exc:  # one case's failure must not cost the others
            traceback.print_exc(file=sys.stderr)
            entry = {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}
            if device.type == "cuda":
                torch.cuda.empty_cache()
        entry["case_wall_s"] = time.perf_counter() - began
        study.record_case(case.name, entry)
        detail = (f", {entry['finished']} finished at {entry['rate_per_s']:.2f}/s, {entry['replay']}"
                  if entry["status"] == "ok" else f" ({entry.get('reason')})")
        _say(f"{case.name}: {entry['status']} in {entry['case_wall_s']:.1f} s{detail}")
    study.summary["wall_s"] = time.perf_counter() - study.started
    study.save()
    print(table(study), flush=True)
    ok = [e for e in study.summary["cases"].values() if e.get("status") == "ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

