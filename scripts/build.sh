#!/usr/bin/env bash
# Configures and builds into ${BUILD:-build}; extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
cmake -S . -B "$build" -DLLVM_DIR=/usr/lib/llvm-19/lib/cmake/llvm "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
