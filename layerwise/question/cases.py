"""The seed's question as cases: each model on each reading of "16 x H100", searched in full.

For every (model, cluster) the plan search runs on the seed's experiment (``seed-16xh100.yaml``):
its finalists hold the paper's two plans exactly as the experiment file states them, the best of
the TP x PP family (uniform TP, even stages, best microbatch count), the best of the layer-wise
family (one layer group per GPU, TP 1, best grouping and microbatch count), and the best plan
overall; all of them simulated event by event.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.inputs import ProfileChoice, resolve_basis
from sim.search.options import SearchOptions
from sim.search.plan_search import search_plans
from sim.search.result import Candidate, SearchResult
from topology.errors import LayerwiseError
from topology.experiment import Experiment, load_experiment

EXPERIMENT = "seed-16xh100"
MODELS = ("seed-dense-16", "seed-1p875b-16")
CLUSTERS = ("seed-16xh100", "seed-16xh100-nvl16")
CLUSTER_WORDS = {"seed-16xh100": "two 8-GPU NVLink nodes joined by 400 Gb/s NICs",
                 "seed-16xh100-nvl16": "one 16-GPU NVLink domain"}
ROLES = ("paper: baseline", "paper: layer-wise", "tp-pp family", "layer-wise family", "search")


@dataclass(frozen=True)
class Case:
    model: str
    cluster: str

    def overrides(self, extra: tuple[str, ...] = ()) -> list[str]:
        return [f"model={self.model}", f"cluster={self.cluster}", *extra]


@dataclass(frozen=True)
class CaseResult:
    case: Case
    experiment: Experiment | None
    search: SearchResult | None
    error: str | None  # why the case could not run
    claims_apply: bool  # the paper's figures are for this model (on 16 H100 of unstated topology)
    wall_s: float

    def candidate(self, role: str) -> Candidate | None:
        """The finalist in a role: a paper plan (by its name in the experiment), a family's best, the best."""
        if self.search is None:
            return None
        if role == "search":
            return self.search.best
        wanted = f"experiment: {role.split(': ', 1)[1]}" if role.startswith("paper: ") else role
        for candidate in self.search.ranked:
            if wanted in candidate.origin.split("; "):
                return candidate
        return None


def main_cases() -> list[Case]:
    return [Case(model, cluster) for model in MODELS for cluster in CLUSTERS]


Job = tuple[Case, tuple[str, ...], ProfileChoice, SearchOptions]


def run_case(job: Job) -> CaseResult:
    """Search one case (on one core: the cases themselves run in parallel)."""
    import time

    case, overrides, choice, options = job
    started = time.perf_counter()
    try:
        experiment = load_experiment(EXPERIMENT, case.overrides(overrides))
        result = search_plans(resolve_basis(experiment, choice), options, jobs=1)
    except LayerwiseError as exc:
        return CaseResult(case, None, None, str(exc), False, time.perf_counter() - started)
    claims_apply = case.model == MODELS[0] and not overrides
    return CaseResult(case, experiment, result, None, claims_apply, time.perf_counter() - started)
