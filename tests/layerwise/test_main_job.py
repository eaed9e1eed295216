"""The main job: every family at its best beside the paper's plans as stated, and a computed verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from layerwise.question.cases import CLUSTERS, MODELS, ROLES, CaseResult
from layerwise.question.main import run_main_job
from sim.inputs import ProfileChoice


@pytest.fixture(scope="module")
def main_job() -> tuple[str, list[CaseResult]]:
    return run_main_job(ProfileChoice(), (), jobs=2, twin_only=False)  # the default: the shipped H100 profile


def test_every_case_has_every_role(main_job: tuple[str, list[CaseResult]]) -> None:
    _, results = main_job
    assert [(r.case.model, r.case.cluster) for r in results] == [(m, c) for m in MODELS for c in CLUSTERS]
    for result in results:
        assert result.search is not None, result.error
        for role in ROLES:
            candidate = result.candidate(role)
            assert candidate is not None and candidate.events is not None, (result.case, role)


def test_each_family_is_at_its_best_and_the_search_beats_all(main_job: tuple[str, list[CaseResult]]) -> None:
    _, results = main_job
    for result in results:
        tps = {role: result.candidate(role).prediction.tokens_per_s for role in ROLES}  # type: ignore[union-attr]
        assert tps["search"] == max(tps.values())
        assert tps["tp-pp family"] >= tps["paper: baseline"]  # the baseline is a TP x PP plan, tuned or not
        assert tps["layer-wise family"] >= tps["paper: layer-wise"]
        layer_wise = result.candidate("layer-wise family")
        assert layer_wise is not None and set(layer_wise.layout.tp_degrees) == {1}
        tp_pp = result.candidate("tp-pp family")
        assert tp_pp is not None and len(set(tp_pp.layout.tp_degrees)) == 1


def test_the_verdict_follows_from_the_numbers(main_job: tuple[str, list[CaseResult]]) -> None:
    text, results = main_job
    headline = results[0]
    tp_pp, layer_wise = headline.candidate("tp-pp family"), headline.candidate("layer-wise family")
    assert tp_pp is not None and layer_wise is not None
    a, b = tp_pp.prediction.tokens_per_s, layer_wise.prediction.tokens_per_s
    winner = "the TP x PP family wins" if a >= b else "the layer-wise family wins"
    assert f"{winner} by {max(a, b) / min(a, b):.2f}x" in text
    assert f"VERDICT for {MODELS[0]} on {CLUSTERS[0]}" in text
    assert "the paper claims 12,800 and 15,360" in text
    # the paper's figures appear only for the model the paper made its claim for
    for block in (b for b in text.split("\n\n") if "paper's baseline, as stated" in b):
        if block.startswith(MODELS[1]):
            assert "12,800" not in block and "15,360" not in block
        if block.startswith(MODELS[0]):
            assert "12,800" in block and "(paper 160)" in block and "(paper 15)" in block
    assert "were never measured on NVIDIA H100 80GB HBM3 (no multi-GPU machine of it was lent)" in text


def _layerwise(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerwise", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600, check=False)


def test_flags_apply_to_the_main_job_or_say_why_not(tmp_path: Path) -> None:
    done = _layerwise("--set", "workload.batch_size=64", "--analytic", "--json", "main.json", "--jobs", "2",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "with --set workload.batch_size=64 (so the paper's figures are not shown)" in done.stdout
    assert "the closed-form twin only (--analytic)" in done.stdout
    assert "12,800" not in done.stdout.split("VERDICT")[0].split("\n", 1)[1]
    payload = json.loads((tmp_path / "main.json").read_text())["cases"]
    assert len(payload) == 4 and payload[0]["search"]["ranked"][0]["events"] is None
    for flag in ("--plan", "--trace"):
        refused = _layerwise(flag, "x", cwd=tmp_path)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "needs an experiment" in refused.stderr
