#!/usr/bin/env bash
# Everything this repository measures on one lent GPU (H100 or H200), in two calls of under 10 minutes.
#   part 1: calibrate (copy + streaming read, GEMMs, attention incl. every GQA path, L2, launch), check
#           graph-timed collectives on one rank, run the executor suite's prefill entries and the GQA
#           (llama3-8b-shaped) decode entries, and confirm a plan search on this GPU (layerwise search --confirm)
#   part 2: the executor's cross-shape benchmark against a minimal reference (issue 15) and, on an H100,
#           the signal-handling check of layerwise run (issue 13)
#   part 3: a later lease: the single-GPU decode entries with CUDA graphs and the plan search's confirm, at
#           this commit (set beside the fitted lease with layerwise validate --compare-leases; never fitted)
#   part 4: the shape study (issue 22): every shape family's step times and kernels, and this lease's HBM
#           and launch figures (benchmarks/device/shape_study.py)
#   part 5: the serving study (issue 23): the host cost per serving iteration, then serving runs of llama3-8b
#           and small-1024 at low, medium and near-saturation Poisson load, short and long prompts, chunking on
#           and off (benchmarks/device/serving_study.py); records and their experiments in $OUT/serving/
# Usage (repo root, on the device): LAYERWISE_GIT_COMMIT=<sha> OUT=<dir> bash benchmarks/device/run_all.sh 1|2|3|4|5
# simpy is not on the device image: carry its wheel in .whl/ (the search in part 1 needs it).
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
part=${1:?usage: bash benchmarks/device/run_all.sh 1|2|3|4|5}
OUT=${OUT:-/tmp/layerwise-out}
work=$(mktemp -d)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/device-part$part.log") 2>&1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONPATH="${PYTHONPATH:-$PWD}"
gpu=$(python3 -c 'import torch; n=torch.cuda.get_device_name(0); print("h200" if "H200" in n else "h100" if "H100" in n else "gpu")')
tag="${gpu}x1"
echo "== part $part on $tag: $(python3 -c 'import torch; print(torch.cuda.get_device_name(0), torch.__version__, torch.version.cuda)'), commit ${LAYERWISE_GIT_COMMIT:-unknown}, $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv || true
python3 -c 'import executor, executor.calibrate.run, layerwise.commands.calibrate, layerwise.commands.run, topology.experiment; print("executor imports ok")' || exit 3
started=$(date +%s)
step() { echo; echo "== $1 ($(( $(date +%s) - started )) s into part $part)"; }

if [ "$part" = 1 ]; then
  mkdir -p "$work/profiles" "$work/hardware" "$work/confirm"
  step "calibrate"
  timeout 240 python3 -m layerwise calibrate --gpus 1 --out "$work/profiles/$tag.json" --plot \
    --model seed-dense-16 --model small-1024 --model llama3-8b || echo "calibrate rc=$? (1: a value was rejected)"
  step "collectives timed in a CUDA graph (one rank)"
  timeout 90 python3 benchmarks/device/check_graph_collectives.py --device cuda \
    --out "$work/graph-collectives-$tag.json" || echo "graph collectives rc=$?"
  step "executor suite: prefill entries and the GQA decode entries"
  timeout 330 python3 -m executor.suite executor/suites/gpu-single.yaml --out "$work/hardware/$tag-v2" \
    --only '(prefill|^llama8-b)' --set "cluster=$tag" || echo "suite rc=$?"
  for trace in "$work/hardware/$tag-v2"/*.pt.trace.json; do
    [ -f "$trace" ] && python3 benchmarks/device/trim_trace.py "$trace"
  done
  step "plan search on this GPU, top 3 run for real (layerwise search --confirm)"
  profile=h100-sxm; [ "$gpu" = h200 ] && profile=results/report-h200x1/fitted-profile.json
  timeout 150 python3 -m layerwise search small-h100x1 --set "cluster=$tag" --profile "$profile" --top 5 \
    --confirm 3 --confirm-out "$work/confirm" --json "$work/confirm/search.json" --no-plot --jobs 4 \
    || echo "search rc=$?"
  mkdir -p /tmp/layerwise-state && cp "$work/profiles/$tag.json" /tmp/layerwise-state/profile.json 2>/dev/null
  tar -C "$work" -czf "$OUT/measured-$tag.tar.gz" profiles hardware confirm $(cd "$work" && ls graph-collectives-*.json 2>/dev/null)
elif [ "$part" = 4 ]; then
  mkdir -p "$work/study"
  step "this lease's HBM and launch figures (layerwise calibrate --quick --only hbm,launch)"
  timeout 60 python3 -m layerwise calibrate --gpus 1 --quick --only hbm,launch --out "$work/study/lease-profile.json" \
    || echo "calibrate rc=$?"
  step "shape study: step times of every family, then their kernels"
  timeout 520 python3 benchmarks/device/shape_study.py --out "$work/study" --steps-wall-s "${STEPS_WALL_S:-300}" \
    --kernels-wall-s "${KERNELS_WALL_S:-140}" || echo "shape study rc=$?"
  tar -C "$work" -czf "$OUT/study-$tag.tar.gz" study
elif [ "$part" = 5 ]; then
  step "serving study: host cost per iteration, then the serving runs (records in $OUT/serving/)"
  timeout 400 python3 benchmarks/device/serving_study.py --out "$OUT" --wall-s "${SERVING_WALL_S:-330}" \
    || echo "serving study rc=$?"
elif [ "$part" = 3 ]; then
  mkdir -p "$work/hardware" "$work/confirm"
  step "executor suite: decode entries with CUDA graphs (a later lease)"
  timeout 300 python3 -m executor.suite executor/suites/gpu-single.yaml --out "$work/hardware/$tag-lease3" \
    --only '^(seed16|seed8|small)-b[0-9]+-c[0-9]+-mb[0-9]+-graph$' --set "cluster=$tag" || echo "suite rc=$?"
  step "plan search on this GPU, top 3 run for real (layerwise search --confirm)"
  profile=h100-sxm; [ "$gpu" = h200 ] && profile=h200-sxm
  timeout 150 python3 -m layerwise search small-h100x1 --set "cluster=$tag" --profile "$profile" --top 5 \
    --confirm 3 --confirm-out "$work/confirm" --json "$work/confirm/search.json" --no-plot --jobs 4 \
    || echo "search rc=$?"
  tar -C "$work" -czf "$OUT/lease3-$tag.tar.gz" hardware confirm
else
  step "executor cross-shape benchmark (issue 15)"
  profile=""  # part 1's calibration of this machine, if this is still the machine part 1 ran on
  [ -f /tmp/layerwise-state/profile.json ] && profile=/tmp/layerwise-state/profile.json
  BENCH_WALL_S=${BENCH_WALL_S:-270} PROFILE=${profile:-} bash benchmarks/device/bench_executor.sh "$work/bench" \
    || echo "bench rc=$?"
  if [ "$gpu" = h100 ]; then
    step "layerwise run stops cleanly on SIGTERM / SIGINT (issue 13)"
    timeout 200 python3 benchmarks/device/check_signals.py "$work/signals" --experiment small-h100x1 \
      || echo "signals rc=$?"
  fi
  tar -C "$work" -czf "$OUT/bench-$tag.tar.gz" .
fi
step "done"
ls -la "$OUT"
