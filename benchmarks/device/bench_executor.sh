#!/usr/bin/env bash
# Issue 15 on one GPU: calibrate the node (the HBM read bandwidth and matmul rate the floors use,
# and every GQA attention path on a GQA shape too), then the executor's cross-shape benchmark.
# Usage (repo root, on the device): bash benchmarks/device/bench_executor.sh OUT_DIR [quick]
#   PROFILE=path.json  reuse a profile calibrated on this machine (no calibrate run)
#   OUT_DIR gets: profile.json (+ .png), calibrate.log, bench-executor.md, bench-executor.json, bench.log
set -uo pipefail
out=${1:?usage: bash benchmarks/device/bench_executor.sh OUT_DIR [quick]}
mode=${2:-full}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the repository, when it is not pip-installed
profile=${PROFILE:-$out/profile.json}
if [ -z "${PROFILE:-}" ]; then
  cal=(--out "$profile" --plot --model seed-dense-16 --model small-1024 --model llama3-8b)
  [ "$mode" = quick ] && cal+=(--quick)
  timeout "${CAL_TIMEOUT_S:-240}" python3 -m layerwise calibrate "${cal[@]}" 2>&1 | tee "$out/calibrate.log"
fi
bench=(grid --out "$out" --max-wall-s "${BENCH_WALL_S:-300}")
if [ -f "$profile" ]; then bench+=(--profile "$profile"); else echo "no profile: datasheet rates"; fi
[ "$mode" = quick ] && bench+=(--quick)
timeout "${BENCH_TIMEOUT_S:-420}" python3 benchmarks/bench_executor.py "${bench[@]}" 2>&1 | tee "$out/bench.log"
echo "bench rc=${PIPESTATUS[0]}"
ls -la "$out"
