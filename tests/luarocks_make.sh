#!/usr/bin/env bash
# `luarocks make` builds and installs goroutine.so from the rockspec, the
# stock interpreter can require it, and the editor types (types/) are in
# the rock's folder. Runs on a copy of the sources in a temporary folder,
# with its own luarocks tree. Usage: luarocks_make.sh SRC
set -euo pipefail
src=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
cp -r "$src/CMakeLists.txt" "$src/cmake" "$src/common" "$src/core" "$src/lua" \
  "$src/rockspecs" "$src/types" "$dir/src/"
cd "$dir/src"
luarocks --lua-version 5.4 make --tree "$dir/tree" rockspecs/goroutine-scm-1.rockspec >"$dir/log" 2>&1 \
  || { cat "$dir/log"; exit 1; }
so=$(find "$dir/tree" -name goroutine.so | head -n 1)
[ -n "$so" ] || { echo "luarocks installed no goroutine.so"; cat "$dir/log"; exit 1; }
out=$(LUA_CPATH="$(dirname "$so")/?.so;;" lua5.4 -e '
  local g = require("goroutine")
  local ok, v = g.await(g.async(function() return "installed" end))
  print(v)')
[ "$out" = installed ] || { echo "unexpected: $out"; exit 1; }
# The editor types, where the README tells an editor to find them.
rock_dir=$(luarocks --lua-version 5.4 --tree "$dir/tree" show --rock-dir goroutine)
for f in "$src"/types/*.lua; do
  cmp -s "$f" "$rock_dir/types/$(basename "$f")" \
    || { echo "luarocks did not install types/$(basename "$f") in $rock_dir"; exit 1; }
done
echo "luarocks make: ok ($so)"
