"""Generated experiment files and command lines, and the one contract every input must meet.

A case is an experiment mapping (a valid tiny experiment, mutated: wrong types, zeros,
negatives, huge values, unknown names, missing fields, mismatched dimensions) written to a
file, and a ``layerwise`` command line over it (``plan``, ``simulate --analytic`` or ``sweep
--analytic``, with generated flags and an output path that may be writable or not).
:func:`run_case` runs it in-process and classifies the outcome. The contract (issue 13):

- ``result``: exit 0, and the output file, if one was asked for, is whole and parses;
- ``error``: exit 2 with exactly one line on stderr (a ``LayerwiseError`` or a usage error);
- ``failed-points``: a sweep whose rows are all written but some points failed, exit 1 with
  the count on stderr;

and never another exception, a hang past the bound, a traceback, or a partial output file.
Shared by ``tests/fuzz/test_fuzz_inputs.py`` (a few hundred cases in CI) and
``benchmarks/bench_fuzz.py`` (10,000, counted).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from hypothesis import strategies as st

from layerwise.cli import main

ACCEPTED = ("result", "error", "failed-points")

BASE: dict[str, Any] = {
    "name": "fuzz",
    "model": "tiny-test",
    "cluster": {"name": "cpu4", "nodes": 1, "gpus_per_node": 4, "gpu": "h100-sxm", "intra_node_link": "nvlink4"},
    "workload": {"phase": "decode", "batch_size": 8, "context_len": 16, "warmup_iters": 1, "measured_iters": 3,
                 "cuda_graphs": False},
    "plans": {"a": {"partitioner": "tp-pp", "tp": 2, "pp": 2, "microbatches": 2},
              "b": {"partitioner": "cache-fit", "capacity": 1, "microbatches": 4},
              "c": {"partitioner": "optimal"}},
}
INLINE_MODEL = {"name": "inline", "num_layers": 4, "hidden_size": 64, "num_heads": 4, "num_kv_heads": 2,
                "head_dim": 16, "mlp_hidden_size": 128, "gated_mlp": True, "vocab_size": 256, "dtype_bytes": 4}

# values as YAML holds them: good ones, zeros, negatives, huge, wrong types, unknown names
VALUES: list[Any] = [
    0, -1, 1, 2, 3, 4, 7, 8, 16, 64, 10**6, 10**12, 2**63, 0.5, -2.5, 1e308, float("nan"), float("inf"),
    "", "abc", "l2", "sram", "l2+sram", "weights", "weights+kv", "weights+kv+activations", "decode", "prefill",
    "grow", "fixed", "tp-pp", "cache-fit", "optimal", "h100-sxm", "h200-sxm", "nvlink4", "ib-ndr-400",
    "tiny-test", "small-1024", "seed-dense-16", "h100x2", "seed-16xh100", "no-such-preset", True, False, None,
    [], [1, 2], {}, {"a": 1},
]
PATHS = [
    "name", "model", "cluster", "workload", "plans", "plan", "profile", "paper_claims_tokens_per_s", "colour",
    "workload.phase", "workload.batch_size", "workload.prompt_len", "workload.context_len",
    "workload.context_growth", "workload.cuda_graphs", "workload.warmup_iters", "workload.measured_iters",
    "workload.seed", "workload.speed",
    "cluster.nodes", "cluster.gpus_per_node", "cluster.gpu", "cluster.intra_node_link", "cluster.inter_node_link",
    "cluster.colour",
    "model.num_layers", "model.hidden_size", "model.num_heads", "model.num_kv_heads", "model.head_dim",
    "model.mlp_hidden_size", "model.gated_mlp", "model.vocab_size", "model.dtype_bytes", "model.colour",
    "plans.a", "plans.a.partitioner", "plans.a.tp", "plans.a.pp", "plans.a.microbatches", "plans.a.capacity",
    "plans.b.capacity", "plans.b.counts", "plans.b.microbatches", "plans.b.num_devices", "plans.b.tp",
    "plans.c.max_devices", "plans.c.microbatches", "plans.c.file", "plans.z", "plans.z.tp",
    "paper_claims_tokens_per_s.a",
]
# values as a command line holds them (YAML text for --set and --grid)
TEXTS = ["0", "-1", "-3", "1", "2", "4", "8", "16", "3", "abc", "1.5", "1e12", "99999999999999", "null", "true",
         "[1, 2]", "{a: 1}", "''", "decode", "prefill", "grow", "l2", "sram", "weights+kv", "tp-pp", "optimal",
         "h100x1", "h100x2", "seed-16xh100", "small-1024", "tiny-test", "no-such"]
PLAN_FLAGS = ["--tp", "--pp", "--batch", "--context", "--microbatches", "--capacity", "--counts", "--phase",
              "--partitioner", "--model", "--cluster", "--plan", "--set", "--bogus"]
OUTPUTS = ("none", "file", "proc", "folder", "nested", "wrong-suffix")
OUTPUT_DRAWS = ("none", "none", "file", "file", "nested", *OUTPUTS[2:])  # mostly writable


@dataclass(frozen=True)
class Case:
    command: str  # plan, simulate or sweep
    experiment: Any  # what the experiment file holds (usually a mapping; may be anything)
    flags: tuple[str, ...]
    output: str  # where --json / --out points: one of OUTPUTS


@dataclass(frozen=True)
class Outcome:
    kind: str  # ACCEPTED, or a violation: crash, hang, traceback, not-one-line, partial-output, bad-output, exit-N
    detail: str


def _set_path(raw: dict[str, Any], path: str, value: Any, delete: bool) -> None:
    parts = path.split(".")
    node: Any = raw
    for part in parts[:-1]:
        if not isinstance(node, dict):
            return
        if not isinstance(node.get(part), dict):
            node[part] = copy.deepcopy(INLINE_MODEL) if part == "model" else {}
        node = node[part]
    if not isinstance(node, dict):
        return
    if delete:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


@st.composite
def experiments(draw: st.DrawFn) -> Any:
    """The base experiment with 0-3 mutations, or (rarely) not a mapping at all."""
    if draw(st.integers(0, 49)) == 0:
        return draw(st.sampled_from([None, [1, 2], "text", 3]))
    raw = copy.deepcopy(BASE)
    if draw(st.booleans()):
        raw["model"] = copy.deepcopy(INLINE_MODEL)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(PATHS))
        value = draw(st.one_of(st.sampled_from(VALUES), st.integers(-3, 40)))
        _set_path(raw, path, value, delete=draw(st.integers(0, 5)) == 0)
    return raw


@st.composite
def cases(draw: st.DrawFn) -> Case:
    command = draw(st.sampled_from(["plan", "simulate", "sweep"]))
    flags: list[str] = []
    texts = st.sampled_from(TEXTS)
    if command == "plan":
        for _ in range(draw(st.integers(0, 3))):
            flag = draw(st.sampled_from(PLAN_FLAGS))
            value = draw(texts) if flag != "--set" else f"{draw(st.sampled_from(PATHS))}={draw(texts)}"
            flags += [flag, value]
    elif command == "simulate":
        flags.append("--analytic")
        if draw(st.booleans()):
            flags += ["--plan", draw(st.sampled_from(["a", "b", "c", "z"]))]
        for _ in range(draw(st.integers(0, 2))):
            flags += ["--set", f"{draw(st.sampled_from(PATHS))}={draw(texts)}"]
    else:
        flags += ["--analytic", "--jobs", draw(st.sampled_from(["1"] * 6 + ["0", "-3", "x"]))]
        for _ in range(draw(st.integers(0, 2))):
            values = ",".join(draw(st.lists(texts, min_size=1, max_size=3)))
            flags += ["--grid", f"{draw(st.sampled_from(PATHS))}={values}"]
        if draw(st.integers(0, 3)) == 0:
            flags += ["--plan", draw(st.sampled_from(["a", "z"]))]
    return Case(command, draw(experiments()), tuple(flags), draw(st.sampled_from(OUTPUT_DRAWS)))


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds`` (SIGALRM)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no end after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _output_flag(case: Case, folder: Path) -> tuple[list[str], Path | None]:
    """The --json / --out flag for ``case.output`` and the file it should leave on success."""
    if case.output == "none":
        return [], None
    flag = "--json" if case.command == "simulate" else "--out"
    suffix = ".csv" if case.command == "sweep" else ".json"
    if case.command == "plan" and "--plan" not in case.flags:
        suffix = ""  # several plans: --out is a folder
    target = {
        "file": folder / f"out{suffix}", "nested": folder / "new" / f"out{suffix}",
        "proc": Path(f"/proc/nope/out{suffix}"), "folder": folder, "wrong-suffix": folder / "out.txt",
    }[case.output]
    return [flag, str(target)], target


def run_case(case: Case, bound_s: float = 20.0) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="layerwise-fuzz-") as tmp:
        folder = Path(tmp)
        exp = folder / "exp.yaml"
        exp.write_text(yaml.safe_dump(case.experiment), encoding="utf-8")
        out_flags, target = _output_flag(case, folder)
        argv = [case.command, str(exp), *case.flags, *out_flags]
        stdout, stderr = io.StringIO(), io.StringIO()
        try:
            with time_bound(bound_s), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse's usage error
                    code = int(exc.code) if isinstance(exc.code, int) else 2
        except Hang as exc:
            return Outcome("hang", str(exc))
        except Exception as exc:  # the contract: never another exception
            return Outcome("crash", f"{type(exc).__name__}: {exc}")
        err = stderr.getvalue()
        return _classify(case, code, err, folder, exp, target)


def _classify(case: Case, code: int, err: str, folder: Path, exp: Path, target: Path | None) -> Outcome:
    if "Traceback" in err:
        return Outcome("traceback", err[-300:])
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p != exp)
    wanted = target is not None and target != folder and folder in target.parents
    if code == 2:
        if err.count("\n") != 1 or " error: " not in err:
            return Outcome("not-one-line", err[-300:])
        return Outcome("error", err.strip()) if not left else Outcome("partial-output", f"{left}: {err.strip()}")
    if code == 1 and case.command == "sweep" and " points failed " in err:
        return _check_output(target, left, wanted) or Outcome("failed-points", err.splitlines()[-1])
    if code == 0:
        return _check_output(target, left, wanted) or Outcome("result", "")
    return Outcome(f"exit-{code}", err[-300:])


def _check_output(target: Path | None, left: list[str], wanted: bool) -> Outcome | None:
    if not wanted or target is None:
        return None if not left or target is not None else Outcome("partial-output", f"unasked: {left}")
    files = sorted(target.glob("*.plan.json")) if target.is_dir() else [target]  # plan: a folder of plans
    if not files or not all(f.is_file() for f in files):
        return Outcome("bad-output", f"missing {target}")
    for file in files:
        text = file.read_text(encoding="utf-8")
        try:
            if file.suffix == ".csv":
                rows = list(csv.DictReader(io.StringIO(text)))
                assert rows
            else:
                json.loads(text)
        except (ValueError, AssertionError):
            return Outcome("bad-output", f"{file.name} does not parse")
    stray = [name for name in left if name.startswith(".") or name.endswith(".tmp")]
    return Outcome("partial-output", f"stray {stray}") if stray else None
