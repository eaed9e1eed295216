"""layerwise: how should this model be split across these GPUs, and how fast will it run?"""

__version__ = "0.1.0"
