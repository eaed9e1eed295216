"""Everything ``optimal`` means, in one place: the plan search's options, their checks, their
command-line flags (``layerwise search`` and ``layerwise plan --partitioner optimal``) and the
arguments of ``partitioner: optimal`` in an experiment file. ``topology.experiment`` knows only
the partitioner's name; :func:`sim.search.plan_search.optimal_partitioner` runs it.

=================  ==================  ===========================================================
flag               experiment file     meaning
=================  ==================  ===========================================================
``--top K``        ``top``             finalists the event simulation re-ranks (default 10)
``--gpus N``       ``gpus``            search on the first N GPUs only (default: the cluster)
``--max-tpot-ms``  ``max_tpot_ms``     decode: the limit on the time between a sequence's tokens
``--max-ttft-ms``  ``max_ttft_ms``     prefill: the limit on the mean time to first token
``--family``       ``family``          ``all``, ``tp-pp`` or ``layer-wise`` (one family only)
``--microbatches`` ``microbatches``    fix the microbatch count (default: every divisor of the batch)
=================  ==================  ===========================================================
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from topology.errors import LayerwiseError
from topology.experiment import Experiment
from topology.partition import OPTIMAL  # the partitioner's name, and that of every plan the search returns
from topology.schema.fields import cli_number

FAMILIES = ("all", "tp-pp", "layer-wise")
DEFAULT_TOP_K = 10
ARG_OF_FLAG = {"--top": "top", "--gpus": "gpus", "--max-tpot-ms": "max_tpot_ms", "--max-ttft-ms": "max_ttft_ms",
               "--family": "family", "--microbatches": "microbatches"}
TEXT_ARGS = ("family",)
MILLISECOND_ARGS = ("max_tpot_ms", "max_ttft_ms")


@dataclass(frozen=True)
class SearchOptions:
    """What to search: how many finalists, on how many GPUs, under which limits, in which family."""

    top_k: int = DEFAULT_TOP_K
    gpus: int | None = None  # search on the first N GPUs (default: the whole cluster)
    max_tpot_s: float | None = None  # decode: the time between a sequence's tokens
    max_ttft_s: float | None = None  # prefill: the mean time to first token
    family: str = "all"  # one of FAMILIES (sim.search.families)
    microbatches: int | None = None  # fix the microbatch count (default: every divisor of the batch)
    events: bool = True  # re-rank the finalists by the event simulation (False: the twin's ranking only)


def check_options(experiment: Experiment, options: SearchOptions) -> None:
    """One line naming the bad option (by its flag), before any work."""
    workload, cluster = experiment.workload, experiment.cluster
    if options.family not in FAMILIES:
        raise LayerwiseError("--family", f"must be one of {FAMILIES}, got {options.family!r}")
    if isinstance(options.top_k, bool) or not isinstance(options.top_k, int) or options.top_k < 1:
        raise LayerwiseError("--top", f"must be a positive integer, got {options.top_k!r}")
    if options.gpus is not None and not 1 <= options.gpus <= cluster.num_devices:
        raise LayerwiseError("--gpus", f"{options.gpus} is not between 1 and cluster {cluster.name!r}'s "
                                       f"{cluster.num_devices} GPUs")
    if options.max_tpot_s is not None:
        if workload.phase != "decode":
            raise LayerwiseError("--max-tpot-ms", "applies to decode (this workload is prefill: use --max-ttft-ms)")
        if not options.max_tpot_s > 0:
            raise LayerwiseError("--max-tpot-ms", f"must be > 0, got {options.max_tpot_s * 1e3:g}")
    if options.max_ttft_s is not None:
        if workload.phase != "prefill":
            raise LayerwiseError("--max-ttft-ms", "applies to prefill (this workload is decode: use --max-tpot-ms)")
        if not options.max_ttft_s > 0:
            raise LayerwiseError("--max-ttft-ms", f"must be > 0, got {options.max_ttft_s * 1e3:g}")
    if options.microbatches is not None and (options.microbatches < 1 or workload.batch_size % options.microbatches):
        raise LayerwiseError("--microbatches", f"{options.microbatches} does not divide batch_size="
                                               f"{workload.batch_size}")


def options_of(args: dict[str, Any]) -> SearchOptions:
    """Options from the experiment file's argument names (milliseconds converted to seconds here)."""
    tpot, ttft = args.get("max_tpot_ms"), args.get("max_ttft_ms")
    return SearchOptions(top_k=int(args.get("top", DEFAULT_TOP_K)), gpus=args.get("gpus"),
                         max_tpot_s=None if tpot is None else tpot * 1e-3,
                         max_ttft_s=None if ttft is None else ttft * 1e-3,
                         family=str(args.get("family", "all")), microbatches=args.get("microbatches"))


def spec_options(experiment: Experiment, plan_name: str, spec: dict[str, Any]) -> SearchOptions:
    """The options of ``plans.NAME: {partitioner: optimal, ...}``, checked before any work; a bad
    one is named as the file names it (``plans.best.microbatches: 16 does not divide batch_size=8``)."""
    args: dict[str, Any] = {}
    known = set(ARG_OF_FLAG.values())
    for key, value in spec.items():
        field = f"plans.{plan_name}.{key}"
        if key not in known:
            raise LayerwiseError(field, f"not an argument of {OPTIMAL} (arguments: {', '.join(sorted(known))})")
        if key in TEXT_ARGS:
            args[key] = str(value)
        elif key in MILLISECOND_ARGS:
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise LayerwiseError(field, f"must be a positive number of milliseconds, got {value!r}")
            args[key] = float(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LayerwiseError(field, f"must be a positive integer, got {value!r}")
            args[key] = value
    options = options_of(args)
    try:
        check_options(experiment, options)
    except LayerwiseError as exc:
        raise LayerwiseError(f"plans.{plan_name}.{ARG_OF_FLAG.get(exc.field, exc.field)}", exc.message) from None
    return options


def add_search_flags(parser: argparse.ArgumentParser, microbatches: bool = True) -> None:
    """The search's flags (``microbatches=False`` where the command has its own ``--microbatches``)."""
    parser.add_argument("--top", type=cli_number("count"), default=DEFAULT_TOP_K, metavar="K",
                        help=f"finalists the events re-rank (default {DEFAULT_TOP_K})")
    parser.add_argument("--gpus", type=cli_number("count"), default=None, metavar="N",
                        help="search on the first N GPUs only")
    parser.add_argument("--max-tpot-ms", type=cli_number("positive"), default=None, help="decode: TPOT limit")
    parser.add_argument("--max-ttft-ms", type=cli_number("positive"), default=None, help="prefill: mean TTFT limit")
    parser.add_argument("--family", choices=FAMILIES, default="all",
                        help="search one family only (default: the whole space)")
    if microbatches:
        parser.add_argument("--microbatches", type=cli_number("count"), default=None, help="fix the microbatch count")


def options_from_flags(args: argparse.Namespace) -> SearchOptions:
    return options_of({"top": args.top, "gpus": args.gpus, "max_tpot_ms": args.max_tpot_ms,
                       "max_ttft_ms": args.max_ttft_ms, "family": args.family,
                       "microbatches": args.microbatches})
