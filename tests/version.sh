#!/usr/bin/env bash
# Every tool answers --version with "NAME VERSION" and exit 0.
#   version.sh VERSION TOOL...
set -uo pipefail
want=$1
shift
for tool in "$@"; do
  name=$(basename "$tool")
  out=$("$tool" --version 2>&1)
  rc=$?
  [ $rc -eq 0 ] || { echo "FAIL: $name --version: exit $rc: $out"; exit 1; }
  [ "$out" = "$name $want" ] ||
    { echo "FAIL: $name --version said '$out', want '$name $want'"; exit 1; }
done
echo "$# tools report $want"
