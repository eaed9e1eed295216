"""Entry points of the fast path: serve a source's requests as ``serving.driver.run_serving`` does,
with an iteration-time function of the iteration's shape (``serving.shape.IterationShape``), keeping
a ``ServingRun`` (``run_serving_fast``) or a summary (``summarize_serving``)."""

from __future__ import annotations

from collections.abc import Sequence

from serving.driver import ServingRun
from serving.fast.driver import FastRun, Progress, ShapeTime
from serving.fast.recorders import DETAILS, RunRecorder
from serving.fast.summary import ServingSummary, SummaryRecorder
from serving.fields import one_of, positive_int
from serving.scheduler_config import SchedulerConfig
from serving.sources import RequestSource


def run_serving_fast(
    source: RequestSource,
    config: SchedulerConfig,
    shape_time_s: ShapeTime,
    *,
    pipeline_depth: int = 1,
    replicas: int = 1,
    router: str = "round_robin",
    detail: str = "records",
    progress: Progress | None = None,
) -> ServingRun:
    """``run_serving(source, config, lambda plan: shape_time_s(shape_of(plan)), ...)``, the same run
    (every request's timestamps, every iteration's composition and times, every state sample) at a
    cost per iteration that does not grow with the requests decoding in it.

    ``detail``: ``trace`` keeps every iteration's plan (``ServingRun.iterations``, as the reference;
    O(requests) per iteration); ``records`` keeps the iterations as columns (``ServingRun.iteration_log``).
    ``progress(now_s, iterations)`` is called every ``PROGRESS_EVERY`` iterations.
    """
    one_of("detail", detail, DETAILS)
    count = positive_int("replicas", replicas)
    recorder = RunRecorder(detail, config.num_blocks * count)
    run = FastRun(source, config, shape_time_s, pipeline_depth, count, router, recorder, progress)
    run.run()
    return recorder.run(count, run.depth)


def summarize_serving(
    source: RequestSource,
    config: SchedulerConfig,
    shape_time_s: ShapeTime,
    *,
    pipeline_depth: int = 1,
    replicas: int = 1,
    router: str = "round_robin",
    itl_percents: Sequence[float] = (),
    progress: Progress | None = None,
) -> ServingSummary:
    """``run_serving_fast``'s run kept as a summary (``serving.fast.summary``): no token time and no
    iteration is kept, so memory grows with the requests, not their tokens. ``itl_percents``: the
    percentiles of each request's own inter-token gaps to keep (those of the ITL SLOs).

    ``summary_metrics(summary, ...)`` gives the run's ``ServingMetrics``."""
    count = positive_int("replicas", replicas)
    recorder = SummaryRecorder(config.num_blocks * count, itl_percents)
    run = FastRun(source, config, shape_time_s, pipeline_depth, count, router, recorder, progress)
    run.run()
    return recorder.summary(count, run.depth)
