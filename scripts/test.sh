#!/usr/bin/env bash
# Builds and runs the whole test suite (ctest, Check).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh "$@"
ctest --test-dir "${BUILD:-build}" --output-on-failure -j"$(nproc)"
