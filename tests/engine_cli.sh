#!/usr/bin/env bash
# xkv-run on stories260K: a prompt shorter than the fixed ranks runs (its
# groups kept exact, and said so), and each cache's size line says what it
# is.   engine_cli.sh XKV_RUN DATA_DIR
set -uo pipefail
run=$1 data=$2
fail() { echo "FAIL: $*"; exit 1; }
args=(--model "$data/stories260K.bin" --tokenizer "$data/tok512.bin"
      --prompt "Once upon a time" --max-new 8 --seed 1 --device cpu)

out=$("$run" "${args[@]}" --cache xkv --rank-k 8 --rank-v 8 2>&1) ||
  fail "xkv, ranks 8 over a 5-token prompt: exit $?: $out"
grep -q "shorter than the ranks (k 8, v 8): [0-9]* of [0-9]* layer groups keep it exact" \
  <<<"$out" || fail "no short-prompt note in: $out"
grep -q "no smaller than an exact f16 cache" <<<"$out" ||
  fail "a cache kept exact in f16 said to be smaller: $out"

out=$("$run" "${args[@]}" --cache exact 2>&1) || fail "exact: exit $?: $out"
grep -q "uncompressed f32 (.* KiB in f16); --cache xkv compresses" <<<"$out" ||
  fail "exact cache size line: $out"
grep -q "compression ratio" <<<"$out" && fail "a ratio for the exact cache: $out"
echo "short prompt kept exact; cache sizes reported"
