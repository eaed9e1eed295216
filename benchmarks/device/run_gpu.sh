#!/usr/bin/env bash
# One call on a lent GPU machine: check the environment, calibrate the node, run the executor
# suite for this GPU count, and pack everything under $OUT (one tarball + the log).
# Usage (from the repo root on the device): LAYERWISE_GIT_COMMIT=<sha> bash benchmarks/device/run_gpu.sh [quick]
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/layerwise-out}
mode=${1:-full}
work=$(mktemp -d)
mkdir -p "$OUT" "$work/hardware" "$work/profiles"
log="$OUT/device.log"
exec > >(tee -a "$log") 2>&1
ngpu=$(python3 -c 'import torch; print(torch.cuda.device_count())')
gpu=$(python3 -c 'import torch; n=torch.cuda.get_device_name(0); print("h200" if "H200" in n else "h100" if "H100" in n else "gpu")')
tag="${gpu}x${ngpu}"
echo "== device: $tag ($(python3 -c 'import torch; print(torch.cuda.get_device_name(0), torch.__version__, torch.version.cuda)'))"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv || true
python3 -c 'import simpy' 2>/dev/null && echo "simpy present" || echo "simpy absent (expected)"
python3 -c 'import executor, executor.calibrate, topology.experiment; print("imports ok without simpy")' || exit 3

echo "== calibrate ($mode)"
cal_args=(--out "$work/profiles/$tag.json")
[ "$mode" = quick ] && cal_args+=(--quick)
timeout "${CAL_TIMEOUT_S:-150}" python3 -m layerwise calibrate "${cal_args[@]}" --plot || echo "calibrate failed rc=$?"

echo "== executor suite"
suite="executor/suites/gpu-${ngpu}.yaml"
[ -f "$suite" ] || suite="executor/suites/gpu-single.yaml"
suite_args=(--out "$work/hardware/$tag" --set "cluster=$tag")  # record the GPU that runs
[ "$mode" = quick ] && suite_args+=(--only '^small-b64-c128-mb1')
timeout "${SUITE_TIMEOUT_S:-420}" python3 -m executor.suite "$suite" "${suite_args[@]}" || echo "suite failed rc=$?"

tar -C "$work" -czf "$OUT/results-$tag.tar.gz" hardware profiles
ls -la "$OUT"
