#!/usr/bin/env bash
# Command-line tests of xkvgen. usage: cli.sh XKVGEN SRC_DIR CASE
set -uo pipefail
gen=$1 src=$2 case=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

case $case in
bad)
  # every malformed kernel: exit status 1 (not a crash), file:line and cause
  n=0
  for f in "$src"/tests/bad/*.xk; do
    want=$(sed -n 's/^-- expect: //p' "$f" | head -1)
    setenv=$(sed -n '3s/^-- env: //p' "$f")
    out=$(env $setenv "$gen" "$f" --target host -o "$tmp/o" 2>&1)
    rc=$?
    [ $rc -eq 1 ] || fail "$f: exit $rc (want 1): $out"
    name=$(basename "$f")
    grep -q "$name:[0-9]" <<<"$out" || fail "$f: no $name:LINE in: $out"
    [ -z "$want" ] || grep -qF -- "$want" <<<"$out" || fail "$f: '$want' not in: $out"
    n=$((n + 1))
  done
  [ $n -ge 12 ] || fail "only $n malformed kernels"
  echo "$n malformed kernels rejected with file:line"
  ;;
tuned)
  # --variants tuned: the default plus the configs winner records select
  # for the target; a corrupt cache is an error
  rec='"status": "ok", "time_us": 1, "spread": 0, "winner": true, "margin": 0.1, "ir_hash": "0", "compiler": "t"'
  cat > "$tmp/t.json" <<EOF
{"format": "xkv-tune-1", "records": [
 {"kernel": "vadd", "key": {"N": 4096}, "config": {"BLOCK": 256, "num_warps": 4}, $rec, "source": "measured", "fingerprint": "cpu:x"},
 {"kernel": "vadd", "key": {"N": 8192}, "config": {"BLOCK": 1024, "num_warps": 4}, $rec, "source": "measured", "fingerprint": "cpu:x"},
 {"kernel": "vadd", "key": {"N": 8192}, "config": {"BLOCK": 2048, "num_warps": 8}, $rec, "source": "model", "fingerprint": "model:sm_90:sms=132"}]}
EOF
  "$gen" "$src/kernels.xk" --kernel vadd --variants tuned --tune "$tmp/t.json" \
    -o "$tmp/h" 2>/dev/null || fail "tuned host build"
  n=$(grep -c '"kernel": "vadd"' "$tmp/h/manifest.json")
  [ "$n" -eq 2 ] || fail "host: $n variants (want the default and BLOCK=256)"
  grep -q '"BLOCK": 256}, "num_warps": 4' "$tmp/h/manifest.json" || fail "no BLOCK=256"
  ! grep -q '"BLOCK": 2048' "$tmp/h/manifest.json" || fail "a model record built for host"
  echo '{"format": "xkv-tune-0", "records": []}' > "$tmp/bad.json"
  out=$("$gen" "$src/kernels.xk" --variants tuned --tune "$tmp/bad.json" -o "$tmp/b" 2>&1)
  [ $? -eq 1 ] || fail "foreign cache accepted"
  grep -q 'format is "xkv-tune-0"' <<<"$out" || fail "unclear: $out"
  echo "tuned variants ok"
  ;;
usage)
  # bad command lines and missing files: clear errors, exit 1
  for args in "" "--bogus" "$src/kernels.xk" "$src/kernels.xk --emit asm" \
    "$src/kernels.xk --emit ptx" "$src/kernels.xk --variants tuned -o $tmp/x" \
    "$src/kernels.xk --target sm_12 --emit llvm" "$src/kernels.xk -D X -o $tmp/x" \
    "$src/kernels.xk --kernel nope --emit ir" "$tmp/missing.xk --emit ir" \
    "$src/kernels.xk -D NOPE=1 --emit ir" "$src/kernels.xk -o /proc/nope/x"; do
    # shellcheck disable=SC2086
    out=$("$gen" $args 2>&1)
    rc=$?
    [ $rc -eq 1 ] || fail "'$args': exit $rc: $out"
    grep -q "xkvgen" <<<"$out" || fail "'$args': unclear error: $out"
  done
  out=$("$gen" --help) || fail "--help: exit $?"
  grep -q "usage: xkvgen" <<<"$out" || fail "--help: $out"
  echo "usage errors ok"
  ;;
manifest)
  # all variants for sm_90 (+ cubins when ptxas exists) and the host
  cub=""
  command -v ptxas >/dev/null || [ -x /usr/local/cuda/bin/ptxas ] && cub=--cubin
  PATH=$PATH:/usr/local/cuda/bin "$gen" "$src/kernels.xk" --target sm_90 \
    --variants all -D num_warps=4 -D num_stages=1 $cub -o "$tmp/gpu" || fail "sm_90 build"
  "$gen" "$src/kernels.xk" --target host -o "$tmp/host" || fail "host build"
  python3 - "$tmp" <<'PY' || exit 1
import json, os, sys
t = sys.argv[1]
for sub, ext in (("gpu", ".ptx"), ("host", ".o")):
    m = json.load(open(os.path.join(t, sub, "manifest.json")))
    vs = m["variants"]
    assert vs, "no variants"
    names = {v["kernel"] for v in vs}
    for k in ("vadd", "softmax", "gemm_f32", "gemm_f16", "rebuild_k"):
        assert k in names, k
    syms = [v["symbol"] for v in vs]
    assert len(set(syms)) == len(syms), "duplicate variant symbols"
    for v in vs:
        p = os.path.join(t, sub, v["file"])
        assert v["file"].endswith(ext) and os.path.getsize(p) > 0, p
        assert v["args"] and v["grid"] and "consts" in v
        if sub == "gpu":
            assert open(p).read().count(".entry " + v["symbol"]) == 1, p
            if "cubin" in v:
                assert v["spill_bytes"] == 0 or v["num_warps"] > 0
        else:
            assert open(p, "rb").read(4) == b"\x7fELF", p
    if sub == "host":
        assert os.path.getsize(os.path.join(t, sub, "kernels.so")) > 0
    print(sub, len(vs), "variants ok")
PY
  # a kernel without a grid rule says so (the runtime then wants a grid)
  cat >"$tmp/nogrid.xk" <<'XK'
kernel "ng" { args = { {"X", ptr(f32)} } }(function(a, c) store(a.X, 1.0) end)
XK
  "$gen" "$tmp/nogrid.xk" --target host -o "$tmp/ng" || fail "no-grid build"
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["variants"][0]; assert v["grid"] is None, v["grid"]' \
    "$tmp/ng/manifest.json" || fail "no-grid manifest"
  echo "no-grid manifest ok"
  ;;
skip)
  # --variants all for sm_86 (99 KB of shared memory per block): each config
  # past it is skipped with one line naming kernel, config and bytes, the
  # rest is written; a failed build leaves nothing behind
  k=$src/tests/data/hopper_configs.xk
  "$gen" "$k" --target sm_86 --kernel mm_f16 --variants all -o "$tmp/o" \
    2>"$tmp/err" || fail "sm_86 build: $(cat "$tmp/err")"
  n=$(grep -c '^xkvgen: skipped mm_f16 (' "$tmp/err")
  [ "$n" -eq 5 ] || fail "want 5 skipped configs, got $n: $(cat "$tmp/err")"
  grep -q 'skipped mm_f16 (BLOCK_M=128 BLOCK_N=256 BLOCK_K=64 num_warps=8 num_stages=4) for sm_86: .*needs 196608 bytes of shared memory, above the 101376-byte limit' \
    "$tmp/err" || fail "skip message: $(cat "$tmp/err")"
  python3 - "$tmp/o" <<'PY' || exit 1
import json, os, sys
d = sys.argv[1]
vs = json.load(open(os.path.join(d, "manifest.json")))["variants"]
assert len(vs) == 3, len(vs)
for v in vs:
    assert 48 * 1024 <= v["dynamic_shared_bytes"] <= 99 * 1024, v
    assert v["dynamic_shared_bytes"] == v["shared_bytes"], v
    ptx = open(os.path.join(d, v["file"])).read()
    assert ".extern .shared .align 16 .b8 " + v["symbol"] + "_smem[]" in ptx
want = sorted(["manifest.json"] + [v["file"] for v in vs])
assert sorted(os.listdir(d)) == want, os.listdir(d)
print("3 variants written, 5 skipped")
PY
  # no config fits: an error, and no output directory
  out=$("$gen" "$k" --target sm_86 --kernel mm_f16 --variants all \
    -D BLOCK_N=256 -D BLOCK_K=64 -o "$tmp/none" 2>&1) && fail "no config fits: exit 0"
  grep -q "kernel 'mm_f16': none of its 2 configs fits sm_86" <<<"$out" ||
    fail "no-fit message: $out"
  [ ! -e "$tmp/none" ] || fail "failed build left $(ls -A "$tmp/none")"
  # a build failing after it wrote artifacts leaves an existing dir as it was
  mkdir "$tmp/keep" && touch "$tmp/keep/old"
  "$gen" "$src/kernels.xk" --kernel vadd -D NOPE=1 -o "$tmp/keep" 2>/dev/null &&
    fail "-D NOPE: exit 0"
  [ "$(ls -A "$tmp/keep")" = old ] || fail "stray files: $(ls -A "$tmp/keep")"
  echo "skips and clean failures ok"
  ;;
const_kinds)
  # -D parses an int, else a float, else a string; other values, other IR
  k=$src/tests/data/const_kinds.xk
  "$gen" "$k" --emit ir > "$tmp/a.ir" || fail "default IR"
  "$gen" "$k" -D ACTIVATION=relu -D ALPHA=0.25 --emit ir > "$tmp/b.ir" ||
    fail "-D IR"
  grep -q 'ALPHA=0.5, ACTIVATION="leaky_relu"' "$tmp/a.ir" || fail "defaults"
  grep -q 'ALPHA=0.25, ACTIVATION="relu"' "$tmp/b.ir" || fail "-D values"
  grep -q ' select ' "$tmp/a.ir" && ! grep -q ' select ' "$tmp/b.ir" ||
    fail "ACTIVATION did not select the code"
  "$gen" "$k" -D ALPHA=1 --emit ir > "$tmp/c.ir" || fail "-D int IR"
  grep -q 'ALPHA=1,' "$tmp/c.ir" || fail "-D int"
  "$gen" "$k" -D ACTIVATION=gelu --emit ir 2> "$tmp/err" && fail "gelu"
  grep -q 'const_kinds.xk:[0-9]*:.*unknown ACTIVATION gelu' "$tmp/err" ||
    fail "gelu message: $(cat "$tmp/err")"
  echo "float and string constexprs ok"
  ;;
*) fail "unknown case $case" ;;
esac
