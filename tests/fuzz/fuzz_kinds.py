"""Every other input kind (issue 25): profiles, saved plans, results, traces, files of the wrong kind, and a
signal at a random point of a long command. Same contract as ``fuzz_cases``: a clean result or one clean
line (exit 2; a signal: its one line and 128 + the signal), never a traceback, a hang, an orphaned process
or a partial output file. Results and traces are read through their loaders (``load_result``,
``load_trace_bars``): a ``LayerwiseError`` is the one line, anything else a crash."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz_cases import Hang, Outcome, time_bound
from hypothesis import strategies as st

from layerwise.cli import main
from topology.datafile import data_dir
from topology.errors import LayerwiseError
from topology.results import load_result
from validate.timeline import load_trace_bars

REPO = Path(__file__).resolve().parents[2]
PROFILE = json.loads(data_dir("profiles").joinpath("h100-sxm.json").read_text(encoding="utf-8"))
RESULT = json.loads(next(iter(sorted((REPO / "tests/data/validate/hardware").glob("*.json")))).read_text())
TRACE = {"traceEvents": [{"ph": "M", "name": "process_name", "pid": 0, "args": {"name": "gpu0"}},
                         {"ph": "X", "name": "L0.attn", "cat": "kernel", "pid": 0, "tid": 0, "ts": 0, "dur": 5},
                         {"ph": "X", "name": "L0.mlp", "cat": "kernel", "pid": 0, "tid": 0, "ts": 5, "dur": 7}]}
NUMBERS: list[Any] = [0, -1, 1, 3, 2.5, -2.5, 1e-300, 1e308, 10**30, 2**63, float("nan"), float("inf"),
                      float("-inf"), "fast", "", True, False, None, [], {}, [1], {"a": 1}]
KINDS = ("profile", "plan", "result", "trace", "file", "signal")
FILE_KINDS = ("fifo", "dev-zero", "binary", "folder", "long-name", "long-path", "empty", "alias-bomb", "deep-json",
              "huge-int")
SIGNAL_COMMANDS = (("search", "llama3-70b-64xh100", "--no-plot"), (),
                   ("sweep", "seed-16xh100", "--grid", "workload.batch_size=8,16,32,64,128", "--jobs", "2"),
                   ("simulate", "seed-16xh100", "--set", "workload.context_growth=grow",
                    "--set", "workload.measured_iters=3000"))


@dataclass(frozen=True)
class KindCase:
    kind: str  # one of KINDS
    mutations: tuple[tuple[tuple[Any, ...], Any], ...] = ()  # (path, value) applied to the base document
    file_kind: str = ""  # kind "file": what the input path names
    target: str = ""  # kind "file": which input (experiment, profile, plan); "signal": which command
    signal_after_s: float = 0.0
    signum: int = 0


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for position, value in enumerate(doc[:2]):
            out += _paths(value, (*prefix, position))
    return out


def _plan_doc() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        with contextlib.redirect_stdout(io.StringIO()):
            main(["plan", "tiny-cpu", "--plan", "pp2", "--out", f"{tmp}/p.json"])
        return dict(json.loads(Path(f"{tmp}/p.json").read_text()))


PLAN = _plan_doc()
BASES = {"profile": PROFILE, "plan": PLAN, "result": RESULT, "trace": TRACE}
PATHS = {kind: _paths(doc) for kind, doc in BASES.items()}


@st.composite
def kind_cases(draw: st.DrawFn) -> KindCase:
    kind = draw(st.sampled_from(KINDS[:5] * 10 + KINDS[5:]))  # signals are slow: one case in 51
    if kind == "file":
        return KindCase(kind, file_kind=draw(st.sampled_from(FILE_KINDS)),
                        target=draw(st.sampled_from(["experiment", "profile", "plan"])))
    if kind == "signal":
        return KindCase(kind, target=str(draw(st.integers(0, len(SIGNAL_COMMANDS) - 1))),
                        signal_after_s=draw(st.sampled_from([0.05, 0.3, 0.8, 1.5, 2.5])),
                        signum=draw(st.sampled_from([int(signal.SIGINT), int(signal.SIGTERM)])))
    mutations = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS[kind]))
        mutations.append((path, draw(st.one_of(st.sampled_from(NUMBERS), st.integers(-3, 10)))))
    return KindCase(kind, mutations=tuple(mutations))


def _mutated(case: KindCase) -> Any:
    doc = copy.deepcopy(BASES[case.kind])
    for path, value in case.mutations:
        node = doc
        for part in path[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                break
        else:
            with contextlib.suppress(KeyError, IndexError, TypeError):
                node[path[-1]] = value
    return doc


def _run_cli(argv: list[str], bound_s: float) -> tuple[int, str]:
    err = io.StringIO()
    with time_bound(bound_s), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code) if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def _cli_outcome(code: int, err: str, folder: Path, allowed: set[str]) -> Outcome:
    if "Traceback" in err:
        return Outcome("traceback", err[-300:])
    left = sorted(p.name for p in folder.rglob("*") if p.is_file() and p.name not in allowed)
    if code == 2:
        if err.count("\n") != 1 or " error: " not in err:
            return Outcome("not-one-line", err[-300:])
        return Outcome("error", err.strip()) if not left else Outcome("partial-output", str(left))
    if code == 0:
        out = folder / "out.json"
        if out.exists():
            try:
                json.loads(out.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
            except ValueError as exc:
                return Outcome("bad-output", str(exc))
        stray = [name for name in left if name not in ("out.json",)]
        return Outcome("partial-output", str(stray)) if stray else Outcome("result", "")
    return Outcome(f"exit-{code}", err[-300:])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} in the output is not JSON")


def _write_file_kind(folder: Path, kind: str) -> str:
    path = folder / "input.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        return "/dev/zero"
    elif kind == "binary":
        path.write_bytes(b"\x00\xff\xfe" * 100)
    elif kind == "folder":
        path.mkdir()
    elif kind == "long-name":
        return str(folder / ("n" * 300 + ".json"))
    elif kind == "long-path":
        return str(folder) + "/d" * 2100 + ".json"
    elif kind == "empty":
        path.write_text("")
    elif kind == "alias-bomb":
        lines = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
            f"{n}: &{n} [" + ", ".join([f"*{p}"] * 9) + "]" for p, n in zip("abcdefg", "bcdefgh", strict=True)]
        path.write_text("\n".join(lines) + "\n")
    elif kind == "deep-json":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "huge-int":
        path.write_text('{"schema_version": ' + "9" * 5000 + "}")
    return str(path)


def run_kind_case(case: KindCase, bound_s: float = 20.0) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="layerwise-fuzz-") as tmp:
        folder = Path(tmp)
        try:
            if case.kind == "signal":
                return _signal_case(case, folder, bound_s)
            if case.kind in ("result", "trace"):
                return _loader_case(case, folder, bound_s)
            argv, allowed = _cli_case(case, folder)
            code, err = _run_cli(argv, bound_s)
        except Hang as exc:
            return Outcome("hang", str(exc))
        except Exception as exc:
            return Outcome("crash", f"{type(exc).__name__}: {exc}")
        return _cli_outcome(code, err, folder, allowed)


def _cli_case(case: KindCase, folder: Path) -> tuple[list[str], set[str]]:
    out = ["--json", str(folder / "out.json")]
    if case.kind == "profile":
        (folder / "p.json").write_text(json.dumps(_mutated(case)))
        return ["simulate", "small-h100x1", "--analytic", "--profile", str(folder / "p.json"), *out], {"p.json"}
    experiment = data_dir("experiments").joinpath("tiny-cpu.yaml").read_text(encoding="utf-8")
    experiment = experiment.split("plans:")[0] + "plans:\n  f: {file: plan.json}\n"
    (folder / "e.yaml").write_text(experiment)
    if case.kind == "plan":
        (folder / "plan.json").write_text(json.dumps(_mutated(case)))
        return ["simulate", str(folder / "e.yaml"), "--analytic", *out], {"e.yaml", "plan.json"}
    path = _write_file_kind(folder, case.file_kind)
    keep = {"e.yaml", "input.json"}
    if case.target == "experiment":
        return ["simulate", path, "--analytic", *out], keep
    if case.target == "profile":
        return ["simulate", "small-h100x1", "--analytic", "--profile", path, *out], keep
    return ["run", "tiny-cpu", "--plan", path if path.endswith(".json") else path + ".json"], keep


def _loader_case(case: KindCase, folder: Path, bound_s: float) -> Outcome:
    file = folder / "in.json"
    file.write_text(json.dumps(_mutated(case)))
    try:
        with time_bound(bound_s):
            if case.kind == "result":
                load_result(file)
            else:
                load_trace_bars(file)
    except LayerwiseError as exc:
        text = str(exc)
        return Outcome("error", text) if "\n" not in text else Outcome("not-one-line", text)
    return Outcome("result", "")


def _signal_case(case: KindCase, folder: Path, bound_s: float) -> Outcome:
    command = [*SIGNAL_COMMANDS[int(case.target)]]
    command += ["--out" if command[:1] == ["sweep"] else "--json", str(folder / "out.json")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-m", "layerwise", *command], cwd=folder, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(case.signal_after_s)
    sent = time.monotonic()
    process.send_signal(case.signum)
    try:
        _, err = process.communicate(timeout=bound_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return Outcome("hang", f"no end {bound_s} s after signal {case.signum}")
    took_s = time.monotonic() - sent
    time.sleep(0.2)
    left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return Outcome("orphan", f"processes {left} left running")
    if "Traceback" in err:
        return Outcome("traceback", err[-300:])
    if process.returncode == 0:  # it finished before the signal
        return _cli_outcome(0, err, folder, set())
    lines = err.strip().splitlines()
    # progress lines ("[main job] 2/4 cases searched") may come before it; the command's last word is one line
    one_line = bool(lines) and "interrupted by SIG" in lines[-1] and all(line.startswith("[") for line in lines[:-1])
    if process.returncode != 128 + case.signum or not one_line:
        return Outcome(f"exit-{process.returncode}", err[-300:])
    stray = [p.name for p in folder.rglob("*") if p.is_file()]
    if stray:
        return Outcome("partial-output", str(stray))
    return Outcome("interrupted" if took_s <= 2.0 else "slow-interrupt", f"{took_s:.2f} s")
