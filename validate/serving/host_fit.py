"""The serving host parameters, fitted on measured iterations.

Every iteration of a measured serving run took ``duration_s``. The simulator prices the same batch's
device work (kernels, all-reduces, transfers) from the profile with the host parameters at zero; the
rest is host time, modelled as

    host_s = serving_iteration_host_s + L x (serving_layer_host_s + serving_seq_layer_host_s x n)

with L the model's layers and n the iteration's sequences, the layer terms for eager iterations only
(``sim/serving/iteration_cost.py``). They are fitted by non-negative least squares over every iteration
of the fit runs (a host cost is never negative); the other runs are held out.

The per-iteration term and the per-layer term are told apart only by runs of models with different
layer counts. When the fit runs share one layer count, the per-iteration term is not fitted: it is what
the engine measured itself outside the forward (``host_s_per_iteration`` in the records' environment,
the mean over their iterations), or the profile's value when the records lack it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from topology.errors import LayerwiseError
from topology.profile import HardwareProfile
from validate.prediction import with_sim_params
from validate.serving.runs import MeasuredServing, price_fn, run_basis

HOST_PARAMS = ("serving_iteration_host_s", "serving_layer_host_s", "serving_seq_layer_host_s")


@dataclass(frozen=True)
class HostFit:
    """The fitted host parameters (seconds), the runs and iterations behind them, and how well they fit."""

    params: dict[str, float]
    runs: tuple[str, ...]
    iterations: int
    mean_abs_residual_s: float  # mean |measured - modelled| iteration time over the fit iterations
    mean_duration_s: float  # mean measured iteration time over them
    how: str = ""  # which terms were fitted, and where the others come from


def device_profile(profile: HardwareProfile | None, gpu_name: str) -> HardwareProfile:
    """``profile`` with every host parameter at zero: what the device alone takes."""
    return with_sim_params(profile, dict.fromkeys(HOST_PARAMS, 0.0), gpu_name)


def host_rows(run: MeasuredServing, profile: HardwareProfile | None) -> tuple[np.ndarray, np.ndarray]:
    """(regressors [1, L, L n] per iteration (layer terms 0 when graphed), measured - device seconds)."""
    price = price_fn(run, run_basis(run, device_profile(profile, _gpu(run)), "device only"))
    layers = run.setup.experiment.model.num_layers
    rows, residuals = [], []
    for iteration in run.record.run.iterations:
        eager = run.eager or not iteration.plan.cuda_graph
        rows.append((1.0, layers if eager else 0.0, layers * len(iteration.plan.items) if eager else 0.0))
        residuals.append(iteration.duration_s - price(iteration.plan))
    return np.asarray(rows, dtype=np.float64), np.asarray(residuals, dtype=np.float64)


def recorded_host_s(runs: Sequence[MeasuredServing]) -> float | None:
    """The engine's own host time per iteration outside the forward, over ``runs`` (None: not recorded)."""
    total_s, count = 0.0, 0
    for run in runs:
        host = run.record.environment.get("serving", {}).get("host_s_per_iteration")
        if not isinstance(host, dict) or not host.get("count"):
            return None
        total_s += float(host["mean"]) * int(host["count"])
        count += int(host["count"])
    return total_s / count if count else None


def fit_host(runs: Sequence[MeasuredServing], profile: HardwareProfile | None) -> HostFit:
    """Non-negative least squares of the host model over every iteration of ``runs``."""
    if not runs:
        raise LayerwiseError("--fit", "selects no measured run to fit the host parameters on")
    parts = [host_rows(run, profile) for run in runs]
    a = np.vstack([rows for rows, _ in parts])
    b = np.concatenate([residual for _, residual in parts])
    if len({run.setup.experiment.model.num_layers for run in runs}) > 1:
        solution, _ = nnls(a, b)
        how = "all three fitted (the fit runs have models of different layer counts)"
    else:
        fixed = recorded_host_s(runs)
        how = "per-iteration term: the engine's own host time outside the forward, recorded in the fit runs"
        if fixed is None:
            fixed = float(run_basis(runs[0], profile, "profile").cost.params.serving_iteration_host_s)
            how = "per-iteration term: the profile's"
        layers, _ = nnls(a[:, 1:], b - fixed)
        solution = np.concatenate([[fixed], layers])
    durations = np.concatenate([[i.duration_s for i in run.record.run.iterations] for run in runs])
    return HostFit(params=dict(zip(HOST_PARAMS, (float(x) for x in solution), strict=True)),
                   runs=tuple(run.name for run in runs), iterations=len(b),
                   mean_abs_residual_s=float(np.abs(b - a @ solution).mean()),
                   mean_duration_s=float(durations.mean()), how=how)


def _gpu(run: MeasuredServing) -> str:
    return str(run.record.environment.get("gpu_name") or run.setup.experiment.cluster.gpu.name)
