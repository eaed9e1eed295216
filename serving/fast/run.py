"""Entry points of the fast path: serve a source's requests as ``serving.driver.run_serving`` does,
with an iteration-time function of the iteration's shape (``serving.shape.IterationShape``)."""

from __future__ import annotations

from serving.driver import ServingRun
from serving.fast.driver import FastRun, ShapeTime
from serving.fast.recorders import DETAILS, RunRecorder
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
) -> ServingRun:
    """``run_serving(source, config, lambda plan: shape_time_s(shape_of(plan)), ...)``, the same run
    (every request's timestamps, every iteration's composition and times, every state sample) at a
    cost per iteration that does not grow with the requests decoding in it.

    ``detail``: ``trace`` keeps every iteration's plan (``ServingRun.iterations``, as the reference;
    O(requests) per iteration); ``records`` keeps the iterations as columns (``ServingRun.iteration_log``).
    """
    one_of("detail", detail, DETAILS)
    count = positive_int("replicas", replicas)
    recorder = RunRecorder(detail, config.num_blocks * count)
    run = FastRun(source, config, shape_time_s, pipeline_depth, count, router, recorder)
    run.run()
    return recorder.run(count, run.depth)
