"""The simulator's inputs as values: the profile chosen once, the :class:`Basis` every plan of an
experiment is priced on (one cost model), and :class:`SimInputs` (a basis and one plan).
:mod:`sim.resolve` turns what the user gave into these; nothing in ``sim/`` below it reads a file.

The one rule for the profile (every command: ``layerwise``, ``simulate``, ``search``, ``plan``,
``sweep``, ``validate``), first match wins:

1. ``--datasheet``: no profile, the GPU and link data files alone;
2. ``--profile PATH_OR_NAME``;
3. the experiment file's ``profile:``;
4. the shipped fitted profile of the cluster's GPU (``topology/data/profiles/<gpu>.json``), if any;
5. otherwise the data files alone.

A profile measured on another GPU than the cluster's is refused unless ``--force-profile``.
Every output names the profile it used (:attr:`Basis.profile_label`) and the held-out band each
prediction carries (:meth:`Basis.band_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.costs.build import build_cost_model
from sim.costs.model import CostModel
from topology.accuracy import (
    BandLookup,
    RegimeError,
    plan_components,
    plan_tp_sizes,
    regime_of,
    unvalidated_components,
)
from topology.errors import LayerwiseError
from topology.experiment import Experiment
from topology.hardware import gpu_preset_for_device
from topology.plan import Plan
from topology.profile import (
    HardwareProfile,
    band_for_cluster,
    check_profile_for_cluster,
    load_profile,
    shipped_profile_name,
)


@dataclass(frozen=True)
class ProfileChoice:
    """What the user asked for (``--profile``, ``--datasheet``, ``--force-profile``), nothing loaded yet."""

    path: str | None = None
    datasheet: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        if self.datasheet and self.path:
            raise LayerwiseError("--datasheet", "give --datasheet or --profile, not both")


@dataclass(frozen=True)
class ChosenProfile:
    """The profile a choice resolved to (``None``: the data files alone), and why."""

    profile: HardwareProfile | None
    name: str | None  # the path or shipped name it was loaded from
    origin: str  # "--profile", "experiment", "shipped default", "--datasheet", "no shipped profile", "given"

    @property
    def label(self) -> str:
        if self.profile is None:
            why = {"--datasheet": " (--datasheet)", "no shipped profile": " (no shipped profile for this GPU)"}
            return f"datasheet parameters{why.get(self.origin, '')}"
        where = f"{self.name}, the shipped default" if self.origin == "shipped default" else (self.name or self.origin)
        return f"{self.profile.source} profile of {self.profile.gpu_name} ({where})"


def choose_profile(experiment: Experiment, choice: ProfileChoice | None = None) -> ChosenProfile:
    """Apply the rule of the module docstring to an experiment."""
    shipped = shipped_profile_name(experiment.cluster.gpu_preset)
    return _choose(choice or ProfileChoice(), experiment.profile_path, shipped)


def choose_measured_profile(device_name: str | None, choice: ProfileChoice | None = None) -> ChosenProfile:
    """The same rule for runs measured on ``device_name`` (``layerwise validate``: no experiment file's
    profile; the shipped default is that of the GPU the runs were measured on)."""
    preset = gpu_preset_for_device(device_name) if device_name else None
    return _choose(choice or ProfileChoice(), None, shipped_profile_name(preset) if preset else None)


def _choose(choice: ProfileChoice, experiment_profile: str | None, shipped: str | None) -> ChosenProfile:
    """The one place a profile file is read for the simulator (:func:`topology.profile.load_profile`)."""
    if choice.datasheet:
        return ChosenProfile(None, None, "--datasheet")
    path, origin = ((choice.path, "--profile") if choice.path
                    else (experiment_profile, "experiment") if experiment_profile
                    else (shipped, "shipped default") if shipped
                    else (None, "no shipped profile"))
    return ChosenProfile(load_profile(path) if path else None, path, origin)


def given_profile(profile: HardwareProfile | None, name: str = "given") -> ChosenProfile:
    """A profile already in memory (a fit under way, a test), or None for the data files alone."""
    if profile is None:
        return ChosenProfile(None, None, "given")
    return ChosenProfile(profile, name, "given")


@dataclass(frozen=True)
class Basis:
    """What prices every plan of one experiment: the experiment, its profile, the one cost model, the band."""

    experiment: Experiment
    chosen: ChosenProfile
    cost: CostModel

    @property
    def profile(self) -> HardwareProfile | None:
        return self.chosen.profile

    @property
    def profile_label(self) -> str:
        return self.chosen.label

    @property
    def regime(self) -> str:
        workload = self.experiment.workload
        return regime_of(workload.phase, workload.cuda_graphs)

    @property
    def band(self) -> RegimeError | None:
        """The band of a one-GPU plan of this experiment (kernels only), if the profile earned one here."""
        return band_for_cluster(self.profile, self.experiment.cluster, self.regime, self.experiment.model).band

    def band_for(self, plan: Plan) -> tuple[BandLookup, tuple[str, ...]]:
        """The band a plan's prediction carries, and the parts of the plan no validation run exercised."""
        experiment = self.experiment
        components = plan_components(plan, experiment.cluster, loops_back=experiment.workload.phase == "decode")
        found = band_for_cluster(self.profile, experiment.cluster, self.regime, experiment.model, components)
        return found, unvalidated_components(components, found.band, plan_tp_sizes(plan))


def basis_of(experiment: Experiment, chosen: ChosenProfile, force: bool = False) -> Basis:
    """Check the profile against the cluster's GPU (unless ``force``) and build the cost model."""
    if chosen.profile is not None:
        check_profile_for_cluster(chosen.profile, experiment.cluster, force)
    cost = build_cost_model(experiment.cluster, chosen.profile, experiment.workload.cuda_graphs)
    return Basis(experiment, chosen, cost)


def resolve_basis(experiment: Experiment, choice: ProfileChoice | None = None) -> Basis:
    """The basis of an experiment from what the user asked (the rule of the module docstring)."""
    choice = choice or ProfileChoice()
    return basis_of(experiment, choose_profile(experiment, choice), choice.force)


@dataclass(frozen=True)
class SimInputs:
    """One plan of an experiment, ready to simulate."""

    basis: Basis
    plan_name: str
    plan: Plan

    @property
    def experiment(self) -> Experiment:
        return self.basis.experiment
