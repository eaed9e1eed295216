"""Ranking, trace reading and the two renderings of the report document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from topology.errors import LayerwiseError
from validate.crossval import Outcome
from validate.measured import Measurement
from validate.prediction import Prediction
from validate.ranking import rank_groups
from validate.report.document import Block, Figure, Heading, Paragraph, Table, numeric_columns, to_html, to_markdown
from validate.timeline import load_trace_bars, steady_window


def _outcomes(measurements: list[Measurement], predicted_s: list[float]) -> tuple[Outcome, ...]:
    out = []
    for m, p in zip(measurements, predicted_s, strict=True):
        prediction = Prediction(step_time_s=p, tokens_per_s=1.0 / p)
        out.append(Outcome(m, 0, prediction, prediction, prediction, prediction))
    return tuple(out)


def test_rank_agreement(stand_in_measurements: list[Measurement]) -> None:
    group = [m for m in stand_in_measurements if m.group_key == stand_in_measurements[0].group_key]
    assert len(group) >= 2
    measured = [m.measured_step_time_s for m in group]
    agreeing = rank_groups(_outcomes(group, measured), "held_out")
    assert len(agreeing) == 1 and agreeing[0].agrees and agreeing[0].order_agrees
    assert len(set(measured)) > 1
    reversed_order = [1.0 / t for t in measured]  # the simulator prefers the slowest
    disagreeing = rank_groups(_outcomes(group, reversed_order), "held_out")
    assert not disagreeing[0].agrees and not disagreeing[0].order_agrees


def test_repeats_of_one_plan_are_averaged_not_ranked(stand_in_measurements: list[Measurement]) -> None:
    group = [m for m in stand_in_measurements if m.group_key == stand_in_measurements[0].group_key]
    same_plan = [m for m in group if m.plan.describe() == group[0].plan.describe()]
    repeats = same_plan + same_plan  # the same runs twice: one plan, no ranking
    assert rank_groups(_outcomes(repeats, [m.measured_step_time_s for m in repeats]), "held_out") == ()
    doubled = group + group
    ranking = rank_groups(_outcomes(doubled, [m.measured_step_time_s for m in doubled]), "held_out")
    assert len(ranking) == 1 and len(ranking[0].plans) == len({m.plan.describe() for m in group})
    assert all("(2 runs)" in plan for plan in ranking[0].plans)


def test_trace_bars_and_window(tmp_path: Path) -> None:
    events = [
        {"ph": "M", "name": "thread_name", "pid": 0, "tid": 1, "args": {"name": "gpu1"}},
        {"ph": "X", "name": "L0.qkv", "cat": "kernel", "pid": 0, "tid": 1, "ts": 100.0, "dur": 50.0},
        {"ph": "X", "name": "cpu op", "cat": "cpu_op", "pid": 0, "tid": 2, "ts": 90.0, "dur": 5.0},
        {"ph": "X", "name": "L1.qkv", "cat": "kernel", "pid": 0, "tid": 1, "ts": 1100.0, "dur": 50.0},
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": events}))
    bars = load_trace_bars(path)
    assert [(b.row, b.start_s) for b in bars] == [("pid 0 / tid 2", 0.0), ("gpu1", pytest.approx(10e-6)),
                                                  ("gpu1", pytest.approx(1010e-6))]
    gpu = load_trace_bars(path, gpu_only=True)
    assert {b.category for b in gpu} == {"kernel"} and gpu[0].operator == "qkv"
    assert [b.name for b in steady_window(gpu, 100e-6)] == ["L1.qkv"]
    path.write_text("{}")
    with pytest.raises(LayerwiseError, match="not a Chrome trace"):
        load_trace_bars(path)
    # a complete event whose duration is null has no bar (the fuzz found a TypeError here)
    path.write_text(json.dumps({"traceEvents": [*events, {"ph": "X", "name": "x", "ts": 5.0, "dur": None}]}))
    assert len(load_trace_bars(path)) == len(bars)


def test_document_renderings() -> None:
    blocks: list[Block] = [Heading(1, "Title"), Paragraph("a **bold** `code` <tag>"),
                           Table(("a", "b|c"), (("1", "2"),)), Figure("f.png", b"\x89PNG", "cap")]
    md = to_markdown(blocks)
    assert md.startswith("# Title\n") and "| a | b\\|c |" in md and "![cap](figures/f.png)" in md
    html = to_html(blocks, "T")
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html and "&lt;tag&gt;" in html
    assert 'src="data:image/png;base64,iVBORw==' in html


def test_numbers_align_right_and_text_left() -> None:
    table = Table(("run", "regime", "ms", "err", "ratio", "note"),
                  (("a/b-1", "decode-graph", "1,234.5", "-4.8%", "1.03x", "fitted on 3 runs"),
                   ("a/c", "prefill", "0.806", "12.0%", "-", "-"),
                   ("a/d", "prefill", "1.2e-06", "0.0%", "0.97x", "at its lower bound")))
    assert numeric_columns(table) == {2, 3, 4}  # a column of "-" only, or of words, is text
    md = to_markdown([table])
    assert "| --- | --- | ---: | ---: | ---: | --- |" in md
    html = to_html([table], "T")
    assert '<th class="n">ms</th>' in html and "<th>regime</th>" in html
    assert '<td class="n">-4.8%</td>' in html and "<td>decode-graph</td>" in html


def test_long_kernel_names_get_short_classes() -> None:
    from validate.report.plots import kernel_class

    assert kernel_class("L3.qkv") == "L3.qkv"
    gemm = "void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_128x2_tn>"
    add = "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>>"
    assert kernel_class(gemm) == "gemm"
    assert kernel_class(add) == "elementwise"
    assert kernel_class("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x128") == "attention"


def test_a_fit_on_its_bound_is_named() -> None:
    from validate.fit import param_spec

    scale = param_spec("prefill_elementwise_time_scale", 1.0)  # within 10x of its start: [0.1, 10]
    assert (scale.lower, scale.upper) == (pytest.approx(0.1), pytest.approx(10.0))
    assert scale.bound_reached(0.1) == "lower" and scale.bound_reached(10.0) == "upper"
    assert scale.bound_reached(0.11) is None and scale.bound_reached(1.24) is None
    efficiency = param_spec("hbm_efficiency", 0.9)  # an efficiency: [0.05, 1]
    assert efficiency.bound_reached(1.0) == "upper" and efficiency.bound_reached(0.95) is None
