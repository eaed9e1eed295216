"""Resolve once: what the user gave (an experiment, a plan or plan name, a profile choice) becomes
:class:`~sim.inputs.SimInputs`, the frozen values the simulator and the twin take.

Commands call :func:`resolve` (one plan) or :func:`sim.inputs.resolve_basis` then
:func:`plan_inputs` (several plans of one experiment, one cost model). A plan named in the
experiment is built by its partitioner; ``optimal`` runs the plan search on the same basis.
"""

from __future__ import annotations

from sim.inputs import Basis, ProfileChoice, SimInputs, basis_of, given_profile, resolve_basis
from sim.search.plan_search import optimal_partitioner
from topology.experiment import Experiment, build_plan
from topology.plan import Plan
from topology.profile import HardwareProfile


def plan_inputs(basis: Basis, plan: str | Plan, jobs: int = 1) -> SimInputs:
    """The experiment's named plan, or a plan given whole (named ``plan``)."""
    if isinstance(plan, Plan):
        return SimInputs(basis, "plan", plan)
    return SimInputs(basis, plan, build_plan(basis.experiment, plan, optimal_partitioner(basis, jobs)))


def resolve(experiment: Experiment, plan: str | Plan, choice: ProfileChoice | None = None) -> SimInputs:
    """Everything one simulation needs, from what the user gave."""
    return plan_inputs(resolve_basis(experiment, choice), plan)


def resolve_given(experiment: Experiment, plan: str | Plan, profile: HardwareProfile | None,
                  force: bool = False) -> SimInputs:
    """The same for a profile already in memory (a fit under way, a test; None: the data files alone):
    no file is read."""
    return plan_inputs(basis_of(experiment, given_profile(profile), force), plan)
