"""Serving validation (``layerwise validate-serving``): measured serving runs (``layerwise run`` on a
serving experiment, or ``benchmarks/device/serving_study.py``) against the simulator.

* :mod:`validate.serving.runs`: a folder of measured runs, and the simulator's run of the same requests;
* :mod:`validate.serving.host_fit`: the serving host parameters fitted on some runs' iterations;
* :mod:`validate.serving.errors`: TTFT, TPOT and E2E at p50, p90 and p99, predicted against measured;
* :mod:`validate.serving.capacity`: the highest rate meeting SLOs, measured (a rate ladder) and predicted;
* :mod:`validate.serving.report`: the report folder (report.md, serving-validation.json, a plot).
"""
