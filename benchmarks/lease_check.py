"""The shipped profile's predictions against runs of a later lease that no fit has seen.

    python benchmarks/lease_check.py results/hardware/h100x1-lease3 --profile h100-sxm
    python benchmarks/lease_check.py results/hardware/h200x1-lease3 --profile h200-sxm --out lease.md

Each result is re-simulated with the identical plan and workload (``validate.resimulate``) under
the profile, and its measured step time is set beside the prediction. The runs repeat
configurations the profile was fitted on, on another machine lease, so this measures how well
the shipped numbers carry to a new lease (drift included), not accuracy on unseen shapes (that is
``layerwise validate``'s held-out error).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from topology.atomic_io import write_text_atomic  # noqa: E402
from topology.profile import load_profile  # noqa: E402
from validate.measured import load_measurements  # noqa: E402
from validate.resimulate import measurement_predictor  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="result JSON files or folders")
    parser.add_argument("--profile", required=True, help="profile JSON or shipped name (h100-sxm, h200-sxm)")
    parser.add_argument("--out", help="also write the table as Markdown here")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    predict = measurement_predictor()
    rows, errors = [], []
    for m in sorted(load_measurements(args.results), key=lambda m: m.key):
        predicted_s = predict(m, profile).step_time_s
        error = predicted_s / m.measured_step_time_s - 1.0
        errors.append(abs(error))
        rows.append(f"| {m.key} | {m.plan.describe()} | {1e3 * m.measured_step_time_s:.3f} | "
                    f"{1e3 * predicted_s:.3f} | {100 * error:+.1f}% |")
    commits = sorted({str(m.result.environment.get("git_commit", "?"))[:7] for m in load_measurements(args.results)})
    lines = [f"Profile `{args.profile}` ({profile.gpu_name}, {profile.source}) against {len(rows)} runs "
             f"(executor commit {', '.join(commits)}); command: `python benchmarks/lease_check.py "
             f"{' '.join(args.results)} --profile {args.profile}`.", "",
             "| run | plan | measured ms | predicted ms | error |", "| --- | --- | ---: | ---: | ---: |", *rows, "",
             f"MAPE {100 * statistics.fmean(errors):.1f}%, worst {100 * max(errors):.1f}% over {len(rows)} runs."]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
