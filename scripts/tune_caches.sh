#!/bin/sh
# Regenerates the committed tune caches (tune/README.md) for the kernels the
# xKV cache and the engine launch, at the keys they hit:
#   head_dim D: 64 (SmolLM2: 9 query / 3 KV heads), 128 (Llama-3.1-8B: 32/8)
#   ranks RK = RV: the rank policy's F / ratio (ratio 4, F = W Hkv D) at
#   W = 1, 2, 4, 8, bucketed to the declared pow2 grid: SmolLM2 48..384 ->
#   64, 128, 256, 512; Llama 256..2048 -> 256, 512, 1024 (2048 only at W = 8
#   on long prompts, left out: its C reference alone takes minutes here)
#   compression GEMMs (gemm_st_*): the randomized SVD's X Q, X^T Y, Y^T Y and
#   the factor write at L = 2048, F = W Hkv D, sketch r + 10
# usage: scripts/tune_caches.sh [cpu|model] [BUDGET_S per kernel family]
# (run from the repository root after building xkv-tune)
set -eu
what=${1:-cpu}
budget=${2:-600}
T=${XKV_TUNE:-build/autotune/xkv-tune}
case $what in
cpu) out=tune/cpu-x86_64-avx512.json dev=cpu ;;
model) out=tune/model-sm_90.json dev=model:sm_90 ;;
*) echo "usage: $0 [cpu|model] [budget_s]" >&2; exit 2 ;;
esac
run() { # kernels, then --keys SPEC or nothing (the declared grid)
  k=$1; shift
  nice "$T" kernels.xk -o "$out" --device "$dev" --budget "$budget" \
    --kernels "$k" "$@"
}
each() { # prefix: the kernel for every storage dtype
  echo "$1f16,$1bf16,$1f32"
}
RANKS="D=64,RK=64,RV=64;D=64,RK=128,RV=128;D=64,RK=256,RV=256;\
D=64,RK=512,RV=512;D=128,RK=256,RV=256;D=128,RK=512,RV=512;\
D=128,RK=1024,RV=1024"
if [ "$what" = model ]; then
  # The sim emulates every thread of the whole launch (about 1 MFLOP/s on
  # this machine): SmolLM2 shapes only, the cheap kernels first, and no
  # compression GEMMs (minutes per candidate); gemm_f16 has its own
  # extrapolating model (tune/README.md).
  run "$(each xkv_decode_exact_),$(each xkv_scores_exact_),$(each xkv_rows_),xkv_decode_combine" \
    --keys "D=64"
  run "$(each xkv_sr_rebuild_)" --keys "D=64,RK=64,RV=64"
  run "$(each xkv_decode_lr_)" --keys "D=64,RK=64,RV=64"
  exit 0
fi
run "$(each xkv_decode_lr_)" --keys "$RANKS"
run "$(each xkv_decode_exact_),$(each xkv_scores_exact_),$(each xkv_rows_),xkv_decode_combine"
run "$(each xkv_sr_rebuild_)" --keys "$RANKS"
run rebuild_k --keys "R=64,D=64;R=64,D=128"
run gemm_st_f32_f32,gemm_st_f32_f16,gemm_st_f32_bf16,gemm_st_f16_f32 --keys \
"M=2048,N=128,K=256;M=256,N=128,K=2048;M=128,N=128,K=2048;\
M=2048,N=512,K=1024;M=1024,N=512,K=2048;M=512,N=512,K=2048"
run softmax --keys "N=256;N=512;N=1024;N=4096"
run vadd,sumsq_f32 --keys "N=65536;N=1048576"
