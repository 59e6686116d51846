#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang, ${BUILD:-build-fuzz}) and
# runs each for SECONDS (default 60) from seeds made of the real inputs:
# kernels.xk and tests/bad/*.xk, manifests (tests/data and, when present,
# xkvgen's under build/), a generated tiny GGUF and llama2.c checkpoint,
# and the head of ../shared/data/stories260K.bin, the committed tune caches
# (tune/*.json). FUZZERS="gguf manifest"
# picks some. Crashes land in $BUILD/crashes/NAME/; the exit status is 1
# when any harness found one. Prints executions and coverage per harness.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
build=${BUILD:-build-fuzz}
cc=${CC:-$(command -v clang-14 || command -v clang)}
fuzzers=${FUZZERS:-kernels manifest gguf llama2c tune_cache}
CC=$cc cmake -S . -B "$build" -DLLVM_DIR=/usr/lib/llvm-19/lib/cmake/llvm \
  -DXKV_FUZZ=ON >/dev/null
targets=fuzz_seeds
for f in $fuzzers; do targets="$targets fuzz_$f"; done
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $targets >/dev/null

seeds=$build/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{kernels,manifest,gguf,llama2c,tune_cache}
cp tune/*.json "$seeds/tune_cache/"
cp kernels.xk tests/bad/*.xk tests/data/*.xk tests/golden/*.ir "$seeds/kernels/"
cp tests/data/rt_host/manifest.json "$seeds/manifest/rt_host.json"
for m in build/runtime/xkv_kernels/*/manifest.json; do
  [ -f "$m" ] && cp "$m" "$seeds/manifest/$(basename "$(dirname "$m")").json"
done
"$build/fuzz/fuzz_seeds" "$seeds/gguf" "$seeds/llama2c"
stories=../shared/data/stories260K.bin
[ -f "$stories" ] && head -c 4096 "$stories" >"$seeds/llama2c/stories260K.head"

status=0
printf '%-10s %10s %8s %8s %s\n' harness execs cov ft crashes
for f in $fuzzers; do
  corpus=$build/corpus/$f crashes=$build/crashes/$f log=$build/fuzz_$f.log
  mkdir -p "$corpus" "$crashes"
  rc=0
  "$build/fuzz/fuzz_$f" "$corpus" "$seeds/$f" -max_total_time="$secs" \
    -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$crashes/" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  found=$(find "$crashes" -type f | wc -l)
  printf '%-10s %10s %8s %8s %s\n' "$f" "${execs:-?}" "${cov:-?}" \
    "${ft:-?}" "$found"
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    status=1
    echo "fuzz_$f: exit $rc; see $log and $crashes/" >&2
    grep -m3 -E 'ERROR|SUMMARY' "$log" >&2 || true
  fi
done
exit $status
