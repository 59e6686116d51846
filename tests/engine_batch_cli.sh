#!/usr/bin/env bash
# xkv-run --batch on stories260K: each sequence of a batch decoded together
# (ragged prompts, through xkv_attention_batch for xKV, with and without
# selective reconstruction; the exact cache one sequence at a time) gives,
# greedy, the text a --batch 1 run of its prompt gives; bad --batch values
# and prompt counts fail naming the cause.   engine_batch_cli.sh XKV_RUN DATA
set -uo pipefail
run=$1 data=$2
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
base=(--model "$data/stories260K.bin" --tokenizer "$data/tok512.bin"
      --device cpu --no-chat --max-new 40)
# the third prompt, from a file, is long enough (>150 tokens) that
# selective reconstruction selects beyond its local window
for i in 1 2 3 4; do
  printf 'Tom had a toy car. He liked to drive it around the house every '
  printf 'day after lunch, and his sister Mia watched him from the big '
  printf 'chair by the window. '
done > "$tmp/long.txt"
prompts=(--prompt "Once upon a time, there was a little girl named Lily. She \
loved to play outside in the sun with her friends and her big red ball."
         --prompt "The little dog ran to the park"
         --prompt-file "$tmp/long.txt")

# the text of sequence $2 in batch output $1 (between its header and the next
# header or the report)
seq_text() {
  awk -v s="=== sequence $2:" 'index($0, s) == 1 { on = 1; next }
    /^=== sequence / || /^---$/ { on = 0 } on' "$1"
}
# a --batch 1 run's text (everything before the report)
one_text() { awk '/^---$/ { exit } { print }' "$1"; }

check_batch() { # name, flags...
  local name=$1; shift
  local i
  "$run" "${base[@]}" "$@" --batch 3 "${prompts[@]}" > "$tmp/b.out" 2> "$tmp/b.err" ||
    fail "$name: --batch 3: exit $?: $(cat "$tmp/b.err")"
  grep -q "^batch: 3 sequences decoded together, [0-9.]* tokens/s" \
    "$tmp/b.out" || fail "$name: no batch throughput line: $(cat "$tmp/b.out")"
  for i in 0 1 2; do
    "$run" "${base[@]}" "$@" "${prompts[@]:$((2 * i)):2}" > "$tmp/1.out" 2> "$tmp/1.err" ||
      fail "$name: prompt $i alone: exit $?: $(cat "$tmp/1.err")"
    one_text "$tmp/1.out" > "$tmp/want"
    seq_text "$tmp/b.out" $i > "$tmp/got"
    [ -s "$tmp/want" ] || fail "$name: prompt $i alone printed no text"
    cmp -s "$tmp/want" "$tmp/got" ||
      fail "$name: sequence $i of the batch differs from its own run:
$(diff "$tmp/want" "$tmp/got")"
  done
  echo "$name: 3 ragged sequences equal their --batch 1 runs"
}

check_batch "xkv" --cache xkv --rank-k 8 --rank-v 8
check_batch "xkv+sr" --cache xkv --rank-k 8 --rank-v 8 --sr-budget 16
grep -q "chunk reuse [1-9]" "$tmp/b.out" ||
  fail "xkv+sr: no chunk was selected twice: $(cat "$tmp/b.out")"
check_batch "exact" --cache exact

expect_err() { # message, flags...
  local msg=$1; shift
  out=$("$run" "${base[@]}" "$@" 2>&1) && fail "$* succeeded: $out"
  grep -qF -- "$msg" <<<"$out" || fail "$*: no \"$msg\" in: $out"
}
expect_err '--batch: "0" is not an integer in [1, 256]' --batch 0 --prompt a
expect_err '--batch: "x2" is not an integer' --batch x2 --prompt a
expect_err '--batch: "-3" is not an integer' --batch -3 --prompt a
expect_err '--batch: "257" is not an integer' --batch 257 --prompt a
expect_err '--batch needs a value' --prompt a --batch
expect_err '2 prompts for --batch 1' --prompt a --prompt b
expect_err 'give a --prompt or a --prompt-file' --batch 2
echo "bad --batch values rejected"
