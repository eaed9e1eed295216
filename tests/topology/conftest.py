"""Shared fixtures for the topology tests: the seed's model, cluster and workload."""

from __future__ import annotations

import pytest

from topology.cluster import Cluster, load_cluster
from topology.model import ModelSpec, load_model
from topology.workload import Workload


@pytest.fixture(scope="session")
def seed_model() -> ModelSpec:
    return load_model("seed-dense-16")


@pytest.fixture(scope="session")
def seed_cluster() -> Cluster:
    return load_cluster("seed-16xh100")


@pytest.fixture(scope="session")
def seed_decode() -> Workload:
    """The seed's workload: decode, batch 128, a fixed 10,000-token context."""
    return Workload(phase="decode", batch_size=128, prompt_len=10000, context_len=10000,
                    warmup_iters=0, measured_iters=1)


@pytest.fixture(scope="session")
def tiny_model() -> ModelSpec:
    return load_model("tiny-test")
