#!/usr/bin/env bash
# One run on a machine with a hardware GPU (written for an NVIDIA card lent for a few minutes):
# the GPU tests, then the GPU benchmarks, everything written under $OUT (default ./device-check).
#
#   OUT=/some/dir tools/device_check.sh [tests|bench|all]
#
# A device call runs at most 10 minutes: on a fresh machine run `tests` (build, probe, tests),
# then `bench` on the same warm machine, whose build outputs are kept between calls.
#
# What comes back:
#   device.txt            nvidia-smi, and the adapters wgpu sees
#   probe.txt             `gradstab probe`: the device's f16 fma, subnormals, autotuned variants
#   tests.txt             the GPU tests (matmul against the CPU reference and fast paths against
#                         the checked path, statistics, activations, elementwise, runtime)
#   bench.txt, bench.json `gradstab bench`: the measured roofline, and each kernel's share of it
#                         (matmul against the FMA peak of its arithmetic)
#   matmul_gpu.txt        criterion, `--bench matmul -- gpu`: every precision and product, and
#                         the fast paths against the checked path (matmul_gpu_paths)
#   reduce_gpu.txt        criterion, `--bench reduce -- gpu`: the statistics census
#   criterion/            criterion's own estimates of the two benchmark runs
# Each step has its own time limit, so that a slow step costs its own figures, not the rest.
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-device-check}
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# The hardware adapter, never a software one that may also be installed; a test without it fails.
export GRADSTAB_ADAPTER="${GRADSTAB_ADAPTER:-nvidia}"
export GRADSTAB_REQUIRE_GPU=1
# 1024 and 4096: 8192³ takes long in the slower precisions and adds little.
export GRADSTAB_BENCH_SIZES="${GRADSTAB_BENCH_SIZES:-1024,4096}"

step() {
  local limit=$1 log=$2
  shift 2
  echo "== $* (limit ${limit}s)" | tee -a "$OUT/steps.txt"
  local start=$SECONDS
  timeout "$limit" "$@" >"$OUT/$log" 2>&1
  echo "   exit $? after $((SECONDS - start))s" | tee -a "$OUT/steps.txt"
}

phase=${1:-all}
{ nvidia-smi || true; } >"$OUT/device.txt" 2>&1
step 300 build.txt cargo build --release --benches --tests
./target/release/gradstab devices >>"$OUT/device.txt" 2>&1
if [ "$phase" = tests ] || [ "$phase" = all ]; then
  step 60 probe.txt ./target/release/gradstab probe
  step 200 tests.txt cargo test --release --test matmul --test matmul_paths --test shaders_validate \
    --test stats --test stats_edges --test activation --test elementwise --test gpu_runtime
  grep -h "test result" "$OUT/tests.txt" >>"$OUT/steps.txt"
fi
if [ "$phase" = bench ] || [ "$phase" = all ]; then
  step 90 bench.txt ./target/release/gradstab bench --backend gpu
  step 90 bench.json ./target/release/gradstab bench --backend gpu --format json
  step 240 matmul_gpu.txt cargo bench --bench matmul -- gpu
  step 90 reduce_gpu.txt cargo bench --bench reduce -- gpu
  cp -r target/criterion "$OUT/criterion" 2>/dev/null
fi
