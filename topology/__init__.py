"""Shared descriptions for layerwise: hardware, clusters, models, layer graph, plans.

Everything here is plain data and pure functions; nothing imports simpy or torch,
so the simulator, the executor and the validator all build on it.
"""
