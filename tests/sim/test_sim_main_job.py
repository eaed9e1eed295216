"""The main job's table and verdict, on the real seed experiment with few iterations."""

from __future__ import annotations

from sim.main_job import BASELINE, CLUSTERS, LAYERWISE, MODELS, main_rows, render_main


def test_main_job_table_and_verdict():
    rows, claims = main_rows(jobs=1, extra_overrides=("workload.warmup_iters=2", "workload.measured_iters=3"))
    assert len(rows) == len(MODELS) * len(CLUSTERS) * 3
    assert all(row.result is not None for row in rows)
    text = render_main(rows, claims)
    assert "VERDICT:" in text and "12,800" in text and "15,360" in text
    assert "beyond the seed" in text and "1/TPS" in text
    seed = {row.plan_name: row.result for row in rows if (row.model, row.cluster) == (MODELS[0], CLUSTERS[0])}
    baseline, layerwise = seed[BASELINE], seed[LAYERWISE]
    assert baseline is not None and layerwise is not None
    # The verdict names whichever plan the numbers say wins.
    baseline_wins = baseline.metrics.tokens_per_s > layerwise.metrics.tokens_per_s
    winner = "the baseline wins" if baseline_wins else "layer-wise wins"
    assert winner in text
    assert layerwise.metrics.extra["communication"]["seed_claimed_events_per_batch"] == 15
    assert baseline.metrics.extra["communication"]["seed_claimed_events_per_batch"] == 160
