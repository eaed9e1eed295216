"""``layerwise calibrate``: measure one node's GPUs and write a hardware profile.

Each measurement lives in its own module (``hbm``, ``gemm``, ``attention``, ``l2``, ``launch``,
``collectives``); ``grids`` says what to measure, ``timing`` how to time it, ``assemble`` turns the
raw measurements into a :class:`topology.profile.HardwareProfile` with the fits of ``fit``
(pure numpy/scipy), and ``plots`` draws a profile (matplotlib, imported only when plotting).
Nothing here imports simpy, sim or validate: it runs on GPU machines without them.
"""
