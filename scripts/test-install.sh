#!/usr/bin/env bash
# Installs an already-built tree into a fresh temporary prefix, then builds
# examples/engine against it twice (find_package(xkv) + xkv_add_kernels, and
# a Makefile on pkg-config with xkvgen run by hand) and runs both.
#   scripts/test-install.sh [BUILD_DIR]     (default: build)
# XKV_EXAMPLE_CFLAGS: extra compile and link flags for the example (the
# sanitizer build passes its -fsanitize flags, which the libraries need).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
flags=${XKV_EXAMPLE_CFLAGS:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

echo "== cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; exit 1; }
for f in include/xkv.h lib/libxkv.a lib/libxkv.so bin/xkvgen bin/xkv-info \
  lib/cmake/xkv/xkvConfig.cmake lib/cmake/xkv/xkvConfigVersion.cmake \
  lib/pkgconfig/xkv.pc; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done
# a package is only usable where it lies now if nothing points back here
if grep -rlI -- "$build" "$prefix/lib/cmake" "$prefix/lib/pkgconfig"; then
  echo "FAIL: the installed package files name the build tree"
  exit 1
fi
"$prefix/bin/xkv-info" --device cpu >/dev/null

echo "== find_package(xkv) (xkv::xkv, xkv_add_kernels)"
cmake -S "$src/examples/engine" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  >"$tmp/cmake.log" || { cat "$tmp/cmake.log"; exit 1; }
cmake --build "$tmp/cmake" >"$tmp/build.log" || { cat "$tmp/build.log"; exit 1; }
"$tmp/cmake/xkv-example"

echo "== pkg-config xkv (libxkv.so, xkvgen by hand)"
mkdir -p "$tmp/pc"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" CFLAGS="$flags" LDFLAGS="$flags" \
  make -s -C "$src/examples/engine" O="$tmp/pc" >"$tmp/make.log" ||
  { cat "$tmp/make.log"; exit 1; }
"$tmp/pc/xkv-example"
so=$(ldd "$tmp/pc/xkv-example" | awk '$1 == "libxkv.so.0" {print $3}')
[ "$(readlink -f "$so")" = "$(readlink -f "$prefix/lib/libxkv.so.0")" ] ||
  { echo "FAIL: runs with '$so', not the installed libxkv.so"; exit 1; }
echo "== xkv_add_kernels without EMBED (artifact directories, KERNELS)"
mkdir -p "$tmp/dirs"
cat >"$tmp/dirs/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.20)
project(dirs C)
find_package(xkv REQUIRED)
add_executable(where where.c)
xkv_add_kernels(TARGET where SOURCES $src/examples/engine/kernels.xk
                TARGETS host sm_90 KERNELS rmsnorm NAME dir_kernels)
CMAKE
printf '#include <stdio.h>\nint main(void) { puts(DIR_KERNELS_DIR); }\n' \
  >"$tmp/dirs/where.c"
cmake -S "$tmp/dirs" -B "$tmp/dirs/b" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$tmp/dirs.log" && cmake --build "$tmp/dirs/b" >>"$tmp/dirs.log" ||
  { cat "$tmp/dirs.log"; exit 1; }
dir=$("$tmp/dirs/b/where")
info=$("$prefix/bin/xkv-info" --device cpu "$dir/host") ||
  { echo "FAIL: xkv-info cannot load $dir/host: $info"; exit 1; }
grep -q "rmsnorm" <<<"$info" || { echo "FAIL: no rmsnorm in: $info"; exit 1; }
ls "$dir"/sm_90/rmsnorm_*.ptx >/dev/null ||
  { echo "FAIL: no sm_90 PTX in $dir/sm_90"; exit 1; }
echo "artifact directories for host and sm_90 in $dir"
echo "install test: ok"
