"""``layerwise validate`` on the committed (synthetic) sample data: every section, a
self-contained HTML page, and a fitted profile the simulator loads."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from layerwise.cli import main
from sim.params import resolve_params
from topology.cluster import load_cluster
from topology.profile import load_profile

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "validate"
SECTIONS = (
    "# layerwise validation report",
    "## Summary",
    "## Data and method",
    "## Measured vs predicted",
    "## Per-experiment error",
    "## Runs across machine leases",
    "## Step-time breakdown",
    "## Timelines: simulated and profiled",
    "## Rank agreement",
    "## Plans compared",
    "### At the measured scale",
    "### Beyond the measured scale",
)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    older = tmp_path_factory.mktemp("data") / "older-lease"  # two runs of another lease, compared only
    older.mkdir()
    for name in ("small-b64-mb1.json", "small-b64-mb2.json"):
        shutil.copy(SAMPLE / "hardware" / name, older / name)
    # the synthetic runs were made with a fitted hbm_efficiency on a profile that measured HBM, which
    # the default choice does not fit (test_val_regimes), so name the parameters to recover
    code = main(["validate", str(SAMPLE / "hardware"), "--profile", str(SAMPLE / "profile.json"),
                 "--out", str(out), "--params", "hbm_efficiency,launch_overhead_graph_s,launch_overhead_eager_s",
                 "--ship-profile", str(out / "shipped" / "h100-sxm.json"), "--compare-leases", str(older)])
    assert code == 0
    return out


def test_markdown_has_every_section(report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    for heading in SECTIONS:
        assert re.search(f"^{re.escape(heading)}$", text, re.MULTILINE), heading
    assert "SYNTHETIC DATA" in text
    assert "Multi-GPU measurements were not possible" in text
    assert "12,800" in text and "15,360" in text  # the experiment file's claims beside the predictions
    # by default every shipped experiment that needs more GPUs than the one measured is predicted
    for name in ("seed-16xh100", "seed-layer-h200x4", "llama3-70b-64xh100"):
        assert f"| {name} |" in text, name
    assert "| tiny-cpu |" not in text  # float32: no measured run used that format
    assert re.search(r"`seed-16xh100` on `seed-16xh100`: layer-wise / baseline = \d\.\d\dx predicted against "
                     r"1\.20x claimed", text)
    assert "held-out MAPE" in text
    for name in ("scatter.png", "errors.png", "breakdown.png", "timelines.png", "extrapolation.png"):
        assert f"figures/{name}" in text
        assert (report_dir / "figures" / name).stat().st_size > 1000


def test_html_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 6
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page
    assert "<h2>Plans compared</h2>" in page


def test_fitted_profile_loads_in_the_simulator(report_dir: Path) -> None:
    profile = load_profile(report_dir / "fitted-profile.json")
    assert profile.source == "validate-fit"
    assert profile.params.sim_params
    params = resolve_params(load_cluster("h100x1"), profile)
    for name, value in profile.params.sim_params.items():
        assert getattr(params, name) == pytest.approx(value)
    summary = json.loads((report_dir / "validation.json").read_text(encoding="utf-8"))
    assert {r: row["runs"] for r, row in summary["regimes"].items()} == {"decode-graph": 6, "decode-eager": 2,
                                                                          "prefill": 1}
    assert summary["rank_agreement"]["microbatch count"]["groups"] == 2  # small b64 mb1/2/4, llama mb1/2
    assert summary["rank_agreement"]["layout (TP against pipeline)"]["groups"] == 0
    # one held-out band per regime, each covering the kernels only (single-GPU runs)
    bands = {band.regime: band for band in profile.validation}
    assert set(bands) == {"decode-graph", "decode-eager", "prefill"}
    graph = bands["decode-graph"]
    assert graph.runs == 6 and graph.components == ("kernels",) and graph.hosts == 1
    assert graph.mape == pytest.approx(summary["regimes"]["decode-graph"]["held_out"]["mape"])
    assert graph.source.endswith("report.md")
    # synthetic data made with known parameters: the fit lands near them (if the simulator's
    # cost model changes, regenerate the sample: python tests/data/validate/make_sample.py)
    truth = json.loads((SAMPLE / "hardware" / "small-b64-mb1.json").read_text())["environment"]["truth_sim_params"]
    assert profile.params.sim_params["hbm_efficiency"] == pytest.approx(truth["hbm_efficiency"], rel=0.1)
    assert profile.params.sim_params["launch_overhead_graph_s"] == pytest.approx(truth["launch_overhead_graph_s"],
                                                                                  rel=0.1)


def test_shipped_profile_is_the_fit_without_raw_measurements(report_dir: Path) -> None:
    fitted = load_profile(report_dir / "fitted-profile.json")
    shipped = load_profile(report_dir / "shipped" / "h100-sxm.json")
    assert shipped.raw == {}
    assert shipped.params == fitted.params and shipped.validation == fitted.validation
    assert shipped.gpu_name == fitted.gpu_name and shipped.source == "validate-fit"
    assert shipped.environment["shipped_from"].startswith(f"{report_dir / 'fitted-profile.json'} (layerwise validate")
    second_line = (report_dir / "report.md").read_text(encoding="utf-8").split("\n\n")[1]
    assert second_line.startswith("Made by `layerwise validate ") and "--ship-profile" in second_line  # as run


def test_other_leases_are_compared_not_fitted(report_dir: Path) -> None:
    summary = json.loads((report_dir / "validation.json").read_text(encoding="utf-8"))
    compared = summary["compared_leases"]
    assert sorted(c["key"] for c in compared) == ["older-lease/small-b64-mb1", "older-lease/small-b64-mb2"]
    assert all(c["measured_step_time_s"] == c["fitted_measured_step_time_s"] for c in compared)  # the same files
    assert all(e["lease"] != "older-lease" for e in summary["experiments"])  # not fitted
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    assert "### Other leases, compared and not fitted" in text and "--compare-leases" in text


def test_missing_profiled_trace_is_said_not_faked(tmp_path: Path) -> None:
    data = tmp_path / "hardware"
    shutil.copytree(SAMPLE / "hardware", data, ignore=shutil.ignore_patterns("*.trace.json"))
    out = tmp_path / "out"
    code = main(["validate", str(data), "--out", str(out), "--folds", "3", "--params", "hbm_efficiency",
                 "--no-extrapolation"])
    assert code == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "No profiled trace is available" in text
    assert "could not be made: skipped (--no-extrapolation)" in text
    assert "3-fold by experiment" in text


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["validate", str(SAMPLE / "hardware"), "--out", str(tmp_path / "o"), "--params", "warp_speed"]) == 2
    assert "unknown simulator parameter" in capsys.readouterr().err


def test_extrapolate_names_experiments_and_clusters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["validate", str(SAMPLE / "hardware"), "--out", str(out), "--folds", "3", "--params",
                 "hbm_efficiency", "--extrapolate", "seed-16xh100@seed-16xh100-nvl16"])
    assert code == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "| seed-16xh100 | seed-16xh100-nvl16 | baseline |" in text
    assert "| llama3-70b-64xh100 |" not in text  # only what was asked
    assert "--extrapolate seed-16xh100@seed-16xh100-nvl16" in text  # the command as run


def test_a_bad_extrapolation_target_fails_before_the_fit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["validate", str(SAMPLE / "hardware"), "--out", str(out), "--extrapolate", "seed-16xh100@nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("layerwise validate: error: --extrapolate: 'seed-16xh100@nowhere': ") and "\n" not in err
    assert not out.exists() or not any(out.iterdir())
    assert main(["validate", str(SAMPLE / "hardware"), "--out", str(out), "--extrapolate", "seed-16xh100",
                 "--no-extrapolation"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
