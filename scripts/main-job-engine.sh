#!/usr/bin/env bash
# The engine's part of the main job: stories260K generates text through the
# xKV cache on the CPU, then xkv-eval prints the compression ratio and the
# agreement with the exact cache (top-1, KL, greedy match) for W = 1, 4.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
data=../shared/data
cmake -S . -B "$build" -DLLVM_DIR=/usr/lib/llvm-19/lib/cmake/llvm >/dev/null
cmake --build "$build" --target xkv-run xkv-eval -j"$(nproc)" >/dev/null
model=(--model "$data/stories260K.bin" --tokenizer "$data/tok512.bin")
"$build/engine/xkv-run" "${model[@]}" \
  --prompt "$(head -c 800 "$data/tinystories_val.txt")" \
  --max-new 100 --cache xkv --group 4 --ratio 4 --device cpu
"$build/engine/xkv-eval" "${model[@]}" --text "$data/tinystories_val.txt" \
  --tokens 512 --device cpu --configs "exact;W=1,ratio=4;W=4,ratio=4"
