"""``layerwise calibrate``: measure one node's GPUs and write a hardware profile.

Each measurement lives in its own module (``hbm``, ``gemm``, ``attention``, ``l2``, ``launch``,
``collectives``); ``grids`` says what to measure, ``timing`` how to time it, ``assemble`` turns the
raw measurements into a :class:`topology.profile.HardwareProfile` with the fits of
``validate.calibration_fit``. Nothing here imports simpy: it runs on GPU machines without it.
"""
