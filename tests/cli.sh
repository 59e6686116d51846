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
    out=$("$gen" "$f" --target host -o "$tmp/o" 2>&1)
    rc=$?
    [ $rc -eq 1 ] || fail "$f: exit $rc (want 1): $out"
    name=$(basename "$f")
    echo "$out" | grep -q "$name:[0-9]" || fail "$f: no $name:LINE in: $out"
    [ -z "$want" ] || echo "$out" | grep -qF -- "$want" || fail "$f: '$want' not in: $out"
    n=$((n + 1))
  done
  [ $n -ge 12 ] || fail "only $n malformed kernels"
  echo "$n malformed kernels rejected with file:line"
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
    echo "$out" | grep -q "xkvgen" || fail "'$args': unclear error: $out"
  done
  "$gen" --help | grep -q "usage: xkvgen" || fail "--help"
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
*) fail "unknown case $case" ;;
esac
