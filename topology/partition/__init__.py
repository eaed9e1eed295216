"""Partitioners: each returns a :class:`topology.plan.Plan`."""

from topology.partition.cache_fit import partition_cache_fit, resolve_capacity_bytes
from topology.partition.min_max_bytes import bytes_moved_cost, partition_min_max_bytes, plan_cost
from topology.partition.tp_pp import partition_tp_pp

OPTIMAL = "optimal"  # the simulator's plan search: its arguments live in sim/search/options.py
PARTITIONERS = ("tp-pp", "cache-fit", "min-max-bytes", OPTIMAL)

__all__ = [
    "OPTIMAL",
    "PARTITIONERS",
    "bytes_moved_cost",
    "partition_cache_fit",
    "partition_min_max_bytes",
    "partition_tp_pp",
    "plan_cost",
    "resolve_capacity_bytes",
]
