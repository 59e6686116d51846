#!/usr/bin/env bash
# The main job: compile every kernel of kernels.xk for the host and for
# sm_90 (cubins too when ptxas exists), then run every kernel on the CPU
# against plain C references and print a table.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
[ -x "$build/codegen/xkvgen" ] || scripts/build.sh
out=$build/kernels
cubin=""
if command -v ptxas >/dev/null || [ -x /usr/local/cuda/bin/ptxas ]; then
  export PATH=$PATH:/usr/local/cuda/bin
  cubin=--cubin
fi
"$build/codegen/xkvgen" kernels.xk --target host -o "$out/host"
"$build/codegen/xkvgen" kernels.xk --target sm_90 $cubin -o "$out/sm_90"
"$build/tests/xkv-check" kernels.xk
