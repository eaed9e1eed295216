"""The serving executor in one process (CPU, float32, the tiny model): it serves every request to
exactly its output length, its tokens are the ones a brute-force recompute of each whole sequence
gives (through chunked prefill, paging and preemption), and a replay of its record reproduces every
batch, for each scheduler policy and for a closed loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from executor.layout import rank_layout
from executor.model import RMS_EPS, mlp
from executor.serving.inputs import TokenHistory
from executor.serving.session import ServingResult, build_weights, serve_in_process
from executor.serving.stage import ServingWeights
from serving.batch import DECODE, PREFILL
from serving.driver import run_serving
from serving.replay import composition, replay_record
from serving.requests import RequestStatus
from serving.run_record import serving_record_from_dict
from serving.setup import load_serving_setup
from serving.sources import request_source
from topology.errors import LayerwiseError
from topology.experiment import build_plan

EXPERIMENT = str(Path(__file__).resolve().parents[1] / "data" / "serving" / "tiny-serve.yaml")
CPU = torch.device("cpu")


def _serve(*overrides: str, plan: str = "tp1") -> ServingResult:
    setup = load_serving_setup(EXPERIMENT, list(overrides))
    return serve_in_process(setup, build_plan(setup.experiment, plan), plan, CPU)


@pytest.fixture(scope="module")
def served() -> ServingResult:
    return _serve()


def test_every_request_gets_exactly_its_tokens(served: ServingResult) -> None:
    records = served.run.records
    assert len(records) == 14 and all(r.status is RequestStatus.FINISHED for r in records)
    for record in records:
        assert len(record.token_times_s) == record.output_tokens == len(served.generated[record.request_id])
        assert record.arrival_s <= record.first_scheduled_s <= record.token_times_s[0]  # type: ignore[operator]
        assert list(record.token_times_s) == sorted(record.token_times_s)


# Six requests at t = 0 (a closed loop of six users, one request each): whatever the iteration times,
# the scheduler sees the same requests at every decision, so this run's batches are fixed: prompts of
# 40 > the 32-token budget are chunked, prefills mix with decodes, and six requests growing to 51
# tokens (4 blocks) in a pool of 12 blocks preempt.
BURST = ("workload.arrivals={kind: closed_loop, users: 6}", "workload.num_requests=6",
         "workload.prompt_tokens={kind: fixed, tokens: 40}", "workload.output_tokens={kind: fixed, tokens: 12}")


def test_a_burst_chunks_mixes_and_preempts() -> None:
    result = _serve(*BURST)
    plans = [it.plan for it in result.run.iterations]
    chunked = [i for p in plans for i in p.items if i.kind == PREFILL and i.context_tokens > i.new_tokens]
    mixed = [p for p in plans if {i.kind for i in p.items} == {PREFILL, DECODE}]
    assert chunked and mixed and any(p.preempted_ids for p in plans)
    # No request arrives after t = 0, so the batches do not depend on the iteration times at all:
    # the driver with any time per iteration makes the same ones.
    setup = load_serving_setup(EXPERIMENT, list(BURST))
    driven = run_serving(request_source(setup.workload), setup.scheduler, lambda plan: 1e-3)
    assert [composition(it.plan) for it in driven.iterations] == [composition(p) for p in plans]
    assert all(p.num_tokens <= 32 and p.num_seqs <= 6 for p in plans)  # the budget and max_num_seqs hold
    assert all(it.kv_blocks_used <= 12 for it in result.run.iterations)
    assert all(len(result.generated[r.request_id]) == 12 for r in result.run.records)
    assert replay_record(result.record).identical


def test_poisson_prompts_longer_than_the_budget_are_chunked(served: ServingResult) -> None:
    long_prompts = {r.request_id for r in served.run.records if r.prompt_tokens > 32}
    continued = {i.request_id for it in served.run.iterations for i in it.plan.items
                 if i.kind == PREFILL and i.context_tokens > i.new_tokens}
    assert long_prompts and long_prompts <= continued  # a later chunk after a cached first one


def test_a_replay_reproduces_every_batch(served: ServingResult) -> None:
    raw = json.loads(json.dumps(served.record.to_dict()))  # through the file format
    comparison = replay_record(serving_record_from_dict(raw))
    assert comparison.identical, comparison.mismatch
    assert comparison.max_time_difference_s == 0.0 and comparison.iterations == len(served.run.iterations)


def test_the_record_says_how_it_was_measured(served: ServingResult) -> None:
    raw = served.record.to_dict()
    assert raw["source"] == "measured" and raw["schema"] == "layerwise-serving-run"
    assert raw["plan"]["stages"][0]["tp_degree"] == 1 and raw["experiment"]["name"] == "tiny-serve"
    assert raw["scheduler"]["num_blocks"] == 12 and raw["pipeline_depth"] == 1
    env = raw["environment"]["serving"]
    assert env["attention"]["path"] == "per-request" and env["attention"]["page_tokens"] == 16
    assert env["cuda_graphs"]["captured_sizes"] == [] and "not on CUDA" in env["cuda_graphs"]["note"]
    assert env["host_s_per_iteration"]["count"] == len(served.run.iterations)
    assert raw["environment"]["torch"] == torch.__version__ and raw["environment"]["git_commit"]
    durations = [it["duration_s"] for it in raw["iterations"]]
    assert all(d > 0 for d in durations)
    assert all(abs(it["end_s"] - it["start_s"] - it["duration_s"]) < 1e-12 for it in raw["iterations"])


def _reference_tokens(weights: ServingWeights, prompt: list[int], count: int) -> list[int]:
    """Greedy decoding by recomputing the whole sequence each step (no KV cache, no chunks, no pages)."""
    model, ids, out = weights.model, list(prompt), []
    heads, kv_heads, d = model.num_heads, model.num_kv_heads, model.head_dim
    for _ in range(count):
        assert weights.embedding is not None and weights.lm_head is not None
        x = F.embedding(torch.tensor(ids), weights.embedding)  # (S, h)
        for w in weights.shards:
            qkv = F.linear(F.rms_norm(x, (x.shape[-1],), w.attn_norm, RMS_EPS), w.qkv)
            q, k, v = qkv.split([heads * d, kv_heads * d, kv_heads * d], dim=-1)
            attn = F.scaled_dot_product_attention(
                q.view(-1, heads, d).transpose(0, 1), k.view(-1, kv_heads, d).transpose(0, 1),
                v.view(-1, kv_heads, d).transpose(0, 1), is_causal=True, enable_gqa=True)  # (H, S, D)
            x = x + F.linear(attn.transpose(0, 1).reshape(len(ids), heads * d), w.o_proj)
            x = x + mlp(w, F.rms_norm(x, (x.shape[-1],), w.mlp_norm, RMS_EPS), model.gated_mlp)
        logits = F.linear(F.rms_norm(x[-1:], (x.shape[-1],), None, RMS_EPS), weights.lm_head)
        out.append(int(logits.argmax()))
        ids.append(out[-1])
    return out


@pytest.mark.usefixtures("one_thread")
def test_tokens_are_a_brute_force_recompute(served: ServingResult) -> None:
    setup = load_serving_setup(EXPERIMENT)
    plan = build_plan(setup.experiment, "tp1")
    weights = build_weights(plan, rank_layout(plan, 0), setup.workload.seed, CPU)
    history = TokenHistory(setup.workload.seed, plan.model.vocab_size)
    preempted = {i for it in served.run.iterations for i in it.plan.preempted_ids}
    checked = [r for r in served.run.records if r.request_id in preempted] + list(served.run.records[:3])
    for record in checked:
        prompt = history.ids(record.request_id, record.prompt_tokens, 0, record.prompt_tokens)
        assert served.generated[record.request_id] == _reference_tokens(weights, prompt, record.output_tokens)


@pytest.mark.parametrize("policy", ["prefill-first", "static"])
def test_other_policies_replay(policy: str) -> None:
    result = _serve(f"scheduler.policy={policy}", "scheduler.max_num_batched_tokens=96", "scheduler.num_blocks=40",
                    "workload.num_requests=6")
    assert all(r.status is RequestStatus.FINISHED for r in result.run.records)
    assert replay_record(result.record).identical


def test_a_closed_loop_replays() -> None:
    result = _serve("workload.arrivals={kind: closed_loop, users: 3, think_time_s: 0.002}", "workload.num_requests=7")
    assert len(result.run.records) == 7 and replay_record(result.record).identical


def test_rejected_requests_are_recorded_not_served() -> None:
    result = _serve("workload.num_requests=5", "workload.prompt_tokens={kind: fixed, tokens: 90}",
                    "workload.output_tokens={kind: uniform, low_tokens: 2, high_tokens: 12}")
    statuses = [r.status for r in result.run.records]
    assert RequestStatus.REJECTED in statuses and RequestStatus.FINISHED in statuses  # 90 + output > 96 or not
    assert replay_record(result.record).identical


def test_bad_serving_setups_are_one_error() -> None:
    with pytest.raises(LayerwiseError, match=r"^serving.replicas: the executor serves one replica"):
        _serve("serving={replicas: 2}")
    with pytest.raises(LayerwiseError, match=r"^plan.devices: plan .* needs 2 processes"):
        _serve(plan="tp2")


@pytest.mark.parametrize(("extra", "line"), [
    (["--set", "serving.replicas=2"], "serving.replicas: the executor serves one replica (one plan's devices); "
                                      "got 2 (the simulator models replicas)"),
    (["--fill", "prefill"], "--fill: applies to fixed-batch runs, not to a serving workload (phase: serve)"),
    (["--set", "workload.arrivals.rate_per_s=0"], "workload.arrivals.rate_per_s: must be > 0, got 0"),
    (["--json", "/"], "--json: '/' is a folder; give a file name"),
    (["--plan", "nope"], "plan: no plan 'nope' (plans: tp1, tp2, pp2, tp2pp2)"),
])
def test_bad_input_is_one_line_before_launch(extra: list[str], line: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from layerwise.cli import main as layerwise_main

    out = tmp_path / "run.json"
    args = ["run", EXPERIMENT, "--plan", "tp2", "--json", str(out), *extra]
    assert layerwise_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"layerwise run: error: {line}")
    assert not out.exists()
