#!/usr/bin/env bash
# The main job, on the CPU when there is no GPU:
#  1. the compiler: every kernel of kernels.xk compiled ahead of time for the
#     host and for sm_90 (cubins too when ptxas exists), then run on this CPU
#     against plain C references (table);
#  2. the engine: stories260K generates text through the xKV cache, then
#     xkv-eval prints the compression ratio and the agreement with the exact
#     cache (top-1, KL, greedy match) for W = 1, 2, 4 at equal storage.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
data=../shared/data
scripts/build.sh >"$build.log" 2>&1 || { cat "$build.log"; exit 1; }
out=$build/kernels
cubin=""
if command -v ptxas >/dev/null || [ -x /usr/local/cuda/bin/ptxas ]; then
  export PATH=$PATH:/usr/local/cuda/bin
  cubin=--cubin
fi
echo "== compiler: kernels.xk -> host objects and sm_90 PTX${cubin:+/cubin}"
"$build/codegen/xkvgen" kernels.xk --target host -o "$out/host"
"$build/codegen/xkvgen" kernels.xk --target sm_90 $cubin -o "$out/sm_90"
"$build/tests/xkv-check" kernels.xk
echo
echo "== engine: stories260K through the xKV cache (W=4, ratio 4, CPU)"
model=(--model "$data/stories260K.bin" --tokenizer "$data/tok512.bin")
"$build/engine/xkv-run" "${model[@]}" \
  --prompt "$(head -c 800 "$data/tinystories_val.txt")" \
  --max-new 100 --cache xkv --group 4 --ratio 4 --device auto
echo
echo "== agreement with the exact cache (teacher-forced, 512 tokens)"
"$build/engine/xkv-eval" "${model[@]}" --text "$data/tinystories_val.txt" \
  --tokens 512 --device auto \
  --configs "exact;W=1,ratio=4;W=2,ratio=4;W=4,ratio=4"
