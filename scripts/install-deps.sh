#!/usr/bin/env bash
# Installs the Debian 12 packages xkv builds and tests with. Idempotent: a
# machine that already has them only pays for the dpkg query.
set -euo pipefail
# clang-14 and its runtime (libFuzzer) build the fuzzers (scripts/fuzz.sh)
pkgs=(cmake pkg-config llvm-19-dev liblua5.4-dev check liblapacke-dev
      libopenblas-dev libcjson-dev clang-format clang-14 libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# matplotlib only draws bench plots (scripts/plot_eval.py): optional
python3 -c "import matplotlib" 2>/dev/null ||
  python3 -m pip install -q matplotlib >/dev/null 2>&1 ||
  echo "install-deps: matplotlib not installed (plots are skipped)"
echo "install-deps: ok"
