"""The small capacity space the tests share: tiny-serve (a 4-layer model on 2 H100s, 120 requests), its
plans (TP1, TP2, PP2), 1 or 2 replicas behind two routers, two max_num_seqs, chunking on and off."""

from __future__ import annotations

from pathlib import Path

from serving.setup import ServingSetup, load_serving_setup
from sim.capacity.options import CapacityOptions, Objective, SpaceOptions
from sim.inputs import Basis, resolve_basis

EXPERIMENT = str(Path(__file__).resolve().parents[1] / "data" / "capacity" / "tiny-serve.yaml")
RESOLUTION = 0.08
SPACE = SpaceOptions(routers=("round_robin", "least_outstanding"), max_num_seqs=(4, 16), max_num_batched_tokens=(512,),
                     chunked=(True, False), uneven=0)


def tiny_setup(overrides: list[str] | None = None) -> tuple[ServingSetup, Basis]:
    setup = load_serving_setup(EXPERIMENT, overrides or [])
    return setup, resolve_basis(setup.experiment)


def rank_options(setup: ServingSetup, top: int = 2, wave: int = 2) -> CapacityOptions:
    return CapacityOptions(slos=setup.slos, objective=Objective("rate-per-gpu"), gpu_budget=2, space=SPACE,
                           resolution=RESOLUTION, top=top, wave=wave)
