#!/usr/bin/env bash
# Issue 14's data, one call on a lent 1-GPU machine (H100 or H200): recalibrate (HBM copy issued
# three ways + streaming read, GEMMs, attention, L2, launch), smoke-test the CUDA-graph timing of
# collectives, and run every prefill entry of executor/suites/gpu-single.yaml (16 entries, one of
# them profiled). Everything lands under $OUT: profiles/<tag>.json(.png), hardware/<tag>-prefill/,
# graph-collectives-<tag>.json, device.log, and results-<tag>.tar.gz of it all.
# Usage (repo root): LAYERWISE_GIT_COMMIT=$(git rev-parse HEAD) OUT=/tmp/out bash benchmarks/device/run_validation_data.sh
# DEVICE=cpu runs every step on a CPU with tiny sizes (gloo; the tiny-test model), to check the plumbing.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/layerwise-out}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT/hardware" "$OUT/profiles"
exec > >(tee -a "$OUT/device.log") 2>&1
if [ "$DEVICE" = cpu ]; then
  tag=cpux1
  cal_args=(--device cpu --quick)
  suite_args=(--only '^(small-prefill-b1-s2048|seed16-prefill-b4-s2048-traced)$' --set model=tiny-test)
else
  gpu=$(python3 -c 'import torch; n=torch.cuda.get_device_name(0); print("h200" if "H200" in n else "h100" if "H100" in n else "gpu")')
  tag="${gpu}x1"
  cal_args=(--gpus 1)
  suite_args=(--only prefill --set "cluster=$tag")  # record the GPU that runs
fi
echo "== device: $tag ($(python3 -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", torch.__version__, torch.version.cuda)')), commit ${LAYERWISE_GIT_COMMIT:-unknown}"
python3 -c 'import executor, executor.calibrate.run, layerwise.commands.calibrate, layerwise.commands.run, topology.experiment; print("imports ok without simpy")' || exit 3

echo "== calibrate"
timeout "${CAL_TIMEOUT_S:-240}" python3 -m layerwise calibrate "${cal_args[@]}" --out "$OUT/profiles/$tag.json" --plot \
  || echo "calibrate rc=$? (1: a value was rejected, see above)"

echo "== collectives timed in a CUDA graph (one rank)"
timeout 120 python3 benchmarks/device/check_graph_collectives.py --device "$DEVICE" \
  --out "$OUT/graph-collectives-$tag.json" || echo "graph collectives rc=$?"

echo "== prefill suite entries"
timeout "${SUITE_TIMEOUT_S:-420}" python3 -m executor.suite executor/suites/gpu-single.yaml \
  --out "$OUT/hardware/$tag-prefill" "${suite_args[@]}" || echo "suite rc=$?"
for trace in "$OUT/hardware/$tag-prefill"/*.pt.trace.json; do
  [ -f "$trace" ] && python3 benchmarks/device/trim_trace.py "$trace"
done

tar -C "$OUT" -czf "$OUT/results-$tag.tar.gz" hardware profiles "graph-collectives-$tag.json"
ls -la "$OUT" "$OUT/hardware/$tag-prefill" "$OUT/profiles"
