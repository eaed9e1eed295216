"""The ``optimal`` partitioner of experiment files: the plan search's answer (``partitioner: optimal``).

Arguments (all optional): ``gpus``, ``microbatches``, ``max_tpot_ms``, ``max_ttft_ms``, ``family``
(``all``, ``tp-pp``, ``layer-wise``) and ``top`` (finalists the events re-rank), as ``layerwise
search`` takes them.
"""

from __future__ import annotations

from typing import Any

from sim.search.result import SearchOptions
from sim.search.run import check_options, search_plans
from topology.errors import LayerwiseError
from topology.experiment import Experiment
from topology.plan import Plan
from topology.profile import HardwareProfile


def options_of(args: dict[str, Any]) -> SearchOptions:
    tpot, ttft = args.get("max_tpot_ms"), args.get("max_ttft_ms")
    return SearchOptions(top_k=int(args.get("top", 10)), gpus=args.get("gpus"),
                         max_tpot_s=None if tpot is None else tpot * 1e-3,
                         max_ttft_s=None if ttft is None else ttft * 1e-3,
                         family=str(args.get("family", "all")), microbatches=args.get("microbatches"))


# the search's command-line flags, as the experiment file's argument names
ARG_OF_FLAG = {"--gpus": "gpus", "--microbatches": "microbatches", "--max-tpot-ms": "max_tpot_ms",
               "--max-ttft-ms": "max_ttft_ms", "--family": "family", "--top": "top"}


def checked_options(experiment: Experiment, plan_name: str, args: dict[str, Any]) -> SearchOptions:
    """The search options of ``plans.NAME``, checked before any work; a bad one is named as the
    file names it (``plans.best.microbatches: 16 does not divide batch_size=8``)."""
    options = options_of(args)
    try:
        check_options(experiment, options)
    except LayerwiseError as exc:
        raise LayerwiseError(f"plans.{plan_name}.{ARG_OF_FLAG.get(exc.field, exc.field)}", exc.message) from None
    return options


def optimal_plan(experiment: Experiment, plan_name: str, args: dict[str, Any],
                 profile: HardwareProfile | None = None, force_profile: bool = False) -> Plan:
    """The event simulation's fastest plan of the search."""
    options = checked_options(experiment, plan_name, args)
    return search_plans(experiment, profile, options, force_profile=force_profile).best.plan
