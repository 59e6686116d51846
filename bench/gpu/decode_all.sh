#!/bin/sh
# Exact vs xKV vs SR decode vs PyTorch SDPA on a lent GPU, in one call
# under 5 minutes. Builds nothing there: build here with CUDA support
# (cmake --build build --target decode), then from the device tool run
#   sh bench/gpu/decode_all.sh        with carry: ["build"]
# (the carried build/bench/decode must load the CUDA driver at run time;
# try it in the first call, as /work/.library/device/H200.md advises).
# Prints a short table last; the CSV lands in bench/results and a copy in
# $OUT when the device tool sets it.
set -eu
bin=${1:-build/bench/decode}
[ -x "$bin" ] || { echo "decode_all: $bin missing: build and carry build/" >&2; exit 1; }
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv || true
timeout 280 python3 bench/gpu/decode_all.py "$bin"
if [ -n "${OUT:-}" ]; then cp bench/results/decode-all-*.csv "$OUT"/; fi
