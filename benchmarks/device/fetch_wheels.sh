#!/usr/bin/env bash
# The wheels the GPU device image lacks (it has torch, numpy, networkx, scipy and pyyaml): pydantic and its
# dependencies (the schema layer, topology/schema/, which every loader calls, the executor's included) and
# simpy (the simulator). run_all.sh installs whatever is in .whl/ (a gitignored folder carried to the device).
# Run here, before a device run:  bash benchmarks/device/fetch_wheels.sh [PYTHON_VERSION ...]  (default 3.10-3.13)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.11 3.12 3.13)
for version in "${versions[@]}"; do
  python3 -m pip download -q --only-binary=:all: --platform manylinux2014_x86_64 --python-version "$version" \
    --dest .whl pydantic pydantic-core annotated-types typing-extensions typing-inspection simpy
done
ls .whl
