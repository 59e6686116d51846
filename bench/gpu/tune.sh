#!/bin/sh
# GPU autotuning in one go on a lent GPU, building nothing there (README
# "Autotuning", tune/README.md "A real GPU").
#
#   sh bench/gpu/tune.sh prepare [KEYS.json] [KERNELS]      (here)
#     builds xkv-tune-run and, for sm_90, every tune{} config of each kernel
#     KEYS.json (default tune/model-sm_90.json) has records for: one xkvgen
#     --variants all directory per kernel and key-constexpr value, cubins
#     assembled here, in build/tune-sm_90/; prints what to carry.
#   sh bench/gpu/tune.sh run [KEYS.json]                    (on the GPU)
#     from the device tool with carry ["build/tune-sm_90",
#     "build/autotune/xkv-tune-run"]: times every variant of every key with
#     xkv-tune-run --device cuda (events around batches, buffers rotated
#     over > 2x L2, outputs checked against the C reference) in under 5
#     minutes, and writes $OUT/cuda-sm_90.json (records "source":
#     "measured", fingerprint cuda:sm_90:sms=N) and its summary table.
#     Commit it as tune/cuda-sm_90.json: it sits apart from the modeled
#     records, and on the GPU the runtime prefers it (same fingerprint).
set -eu
mode=${1:-}
keys=${2:-tune/model-sm_90.json}
arts=build/tune-sm_90
tool=build/autotune/xkv-tune-run
case $mode in
prepare)
  cmake --build build -j2 --target xkvgen xkv-tune-run
  rm -rf "$arts"
  mkdir -p "$arts"
  python3 bench/gpu/tune_prepare.py "$keys" "$arts" build/codegen/xkvgen \
    sm_90 ${3:+"$3"}
  du -sh "$arts"
  echo "carry: [\"$arts\", \"$tool\"]"
  ;;
run)
  if [ ! -x "$tool" ] || [ ! -d "$arts" ]; then
    echo "tune.sh run: $tool or $arts missing: run 'sh bench/gpu/tune.sh" \
      "prepare' here and carry both" >&2
    exit 1
  fi
  out=${OUT:-bench/results}
  nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv || true
  # --budget: later keys get their default only once it is spent; the
  # timeout is the hard stop under the device tool's 5 minutes
  timeout 280 "$tool" "$arts"/* --device cuda --keys-from "$keys" \
    --budget 200 --quiet -o "$out/cuda-sm_90.json" \
    --json "$out/tune-cuda-sm_90-summary.json"
  ;;
*)
  echo "usage: sh bench/gpu/tune.sh prepare [KEYS.json] [KERNELS] | run [KEYS.json]" >&2
  exit 2
  ;;
esac
