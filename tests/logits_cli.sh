#!/usr/bin/env bash
# xkv-logits on stories260K: rows written by the prefill and by decode steps
# agree (the same position's logits from a 28-token prefill and from a
# 24-token prefill plus 4 decode steps), the ids are the text's, and bad
# arguments are clear errors.   logits_cli.sh XKV_LOGITS DATA_DIR
set -uo pipefail
tool=$1 data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
args=(--model "$data/stories260K.bin" --tokenizer "$data/tok512.bin"
      --text "$data/tinystories_val.txt" --tokens 32 --device cpu)

"$tool" "${args[@]}" --rows 4 --out "$tmp/a.bin" >/dev/null || fail "rows 4"
"$tool" "${args[@]}" --rows 8 --out "$tmp/b.bin" >/dev/null || fail "rows 8"
python3 - "$tmp/a.bin" "$tmp/b.bin" <<'PY' || fail "prefill and decode rows differ"
import struct, sys
def load(path):
    b = open(path, "rb").read()
    assert b[:4] == b"XKVL", b[:4]
    n, V, p = struct.unpack_from("<3i", b, 4)
    ids = struct.unpack_from(f"<{n}i", b, 16)
    off = 16 + 4 * n
    assert len(b) == off + 4 * (n - p) * V, (len(b), n, p, V)
    rows = [struct.unpack_from(f"<{V}f", b, off + 4 * V * i) for i in range(n - p)]
    return n, V, p, ids, rows
na, Va, pa, ida, ra = load(sys.argv[1])
nb, Vb, pb, idb, rb = load(sys.argv[2])
assert (na, Va, pa, pb) == (32, 512, 28, 24) and ida == idb, (na, Va, pa, pb)
worst = 0.0
for i in range(4):  # a's rows 0..3 are b's rows 4..7
    x, y = ra[i], rb[i + 4]
    scale = max(abs(v) for v in x)
    worst = max(worst, max(abs(u - v) for u, v in zip(x, y)) / scale)
assert worst < 1e-4, worst
print(f"prefill vs decode rows: max relative difference {worst:.2e}")
PY
out=$("$tool" "${args[@]}" --rows 32 --out "$tmp/c.bin" 2>&1) && fail "rows = tokens"
grep -q -- "--rows 32 must be below --tokens 32" <<<"$out" || fail "rows message: $out"
out=$("$tool" "${args[@]}" --out "$tmp/no/such/dir" 2>&1) && fail "bad out path"
grep -q "no/such/dir: cannot create" <<<"$out" || fail "out path message: $out"
echo "xkv-logits rows consistent; errors clear"
