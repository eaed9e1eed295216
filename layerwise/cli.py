"""The ``layerwise`` command: one entry point, one module per subcommand under ``layerwise/commands``.

Each subcommand module provides ``add_arguments(parser)`` and ``run(args) -> int``, and is
imported only when its subcommand runs (so ``layerwise run`` and ``calibrate`` need no simpy and
``layerwise simulate`` no torch). User errors print one line and exit 2; SIGINT and SIGTERM
one line and 128 + the signal (:mod:`layerwise.terminal.interrupts`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from layerwise.terminal import interrupts
from topology.errors import LayerwiseError

COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("layerwise.commands.simulate", "simulate an experiment (no arguments: the seed's 16 x H100 question)"),
    "sweep": ("layerwise.commands.sweep", "simulate the cartesian product of --grid values, in parallel"),
    "search": ("layerwise.commands.search",
               "find the fastest plan (the twin scores every plan, events re-rank the best)"),
    "capacity": ("layerwise.commands.capacity",
                 "the cheapest deployment that meets latency SLOs (plans, replicas, scheduler settings)"),
    "plan": ("layerwise.commands.plan", "show how a partitioner splits a model (no arguments: the seed's two plans)"),
    "run": ("layerwise.commands.run", "run an experiment's plan for real under torchrun"),
    "calibrate": ("layerwise.commands.calibrate", "measure this node's GPUs and write a hardware profile"),
    "validate": ("layerwise.commands.validate", "fit the simulator to measured runs and write the report"),
    "validate-serving": ("layerwise.commands.validate_serving",
                         "measured serving runs against the simulator: latency percentiles and capacity"),
    "import": ("layerwise.commands.import_runs", "turn another executor's measured runs into an imported-runs file"),
}
DEFAULT_COMMAND = "simulate"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``layerwise CMD: error: ...``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _usage() -> str:
    lines = ["usage: layerwise [COMMAND] [ARGS...]", "", "commands:"]
    for name, (_, summary) in COMMANDS.items():
        lines.append(f"  {name:<10} {summary}")
    lines += ["", f"With no command, runs `layerwise {DEFAULT_COMMAND}` (the main job).",
              "`layerwise COMMAND --help` for a command's options."]
    return "\n".join(lines)


def _empty_value(args: list[str]) -> str | None:
    """No option takes an empty value (``--json ''`` would write nothing and say nothing)."""
    for position, word in enumerate(args):
        if word.startswith("--") and word.endswith("="):
            return f"{word[:-1]} is given an empty value"
        if word == "" and position > 0 and args[position - 1].startswith("-"):
            return f"{args[position - 1]} is given an empty value"
        if word == "":
            return "an empty argument"
    return None


def main(argv: list[str] | None = None) -> int:
    interrupts.install()
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args and args[0] in ("-V", "--version"):
        from layerwise import __version__

        print(f"layerwise {__version__}")
        return 0
    command = DEFAULT_COMMAND
    if args and not args[0].startswith("-"):
        if args[0] not in COMMANDS:
            print(f"layerwise: error: unknown command {args[0]!r}\n\n{_usage()}", file=sys.stderr)
            return 2
        command = args.pop(0)
    empty = _empty_value(args)
    if empty is not None:
        print(f"layerwise {command}: error: {empty} (see layerwise {command} --help)", file=sys.stderr)
        return 2
    try:
        return _run(command, args)
    except LayerwiseError as exc:
        print(f"layerwise {command}: error: {exc}", file=sys.stderr)
        return 2
    except interrupts.Interrupted as stop:  # at any point: importing the command, parsing, running
        print(f"layerwise {command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # raised before the handler was installed, or by a library that re-raises
        print(f"layerwise {command}: interrupted by SIGINT", file=sys.stderr)
        return 130
    except Exception:
        signum = interrupts.pending()
        if signum is None:
            raise
        # The signal's exception broke a library's state on its way out (SimPy: an event triggered twice);
        # what followed is the interrupt's doing, and the command ends as interrupted.
        interrupted = interrupts.Interrupted(signum)
        print(f"layerwise {command}: {interrupted}", file=sys.stderr)
        return interrupted.exit_code


def _run(command: str, args: list[str]) -> int:
    module_name, summary = COMMANDS[command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(f"layerwise: error: `{command}` needs the missing module {exc.name!r}", file=sys.stderr)
        return 2
    parser = OneLineParser(prog=f"layerwise {command}", description=summary)
    module.add_arguments(parser)
    parsed = parser.parse_args(args)
    interrupts.check()  # a signal lost while a module was imported (a finalizer swallowed it) acts here
    return int(module.run(parsed) or 0)


def entry() -> NoReturn:
    """The program (the ``layerwise`` script and ``python -m layerwise``): :func:`main`, then SIGINT and
    SIGTERM held until the process has exited, so a late signal cannot kill the interpreter's shutdown,
    where no handler runs any more (the command's outputs are whole by then)."""
    try:
        code = main()
        interrupts.block()
    except interrupts.Interrupted as stop:  # between main's return and the block
        print(f"layerwise: {stop}", file=sys.stderr)
        code = stop.exit_code
    sys.exit(code)
