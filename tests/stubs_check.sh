#!/usr/bin/env bash
# The editor types (types/*.lua) name exactly what the modules register:
# tests/lua/stubs_check.lua under `goroutined run` and, when a module
# folder is given, under lua5.4 with goroutine.so. Then the same check on
# a copy of the stubs with a function dropped, a method dropped and one
# added must fail and name all three, so the check can see a difference.
# Usage: stubs_check.sh GOROUTINED SRC [GOROUTINE_SO_DIR]
set -euo pipefail
bin=$(realpath "$1")
src=$(realpath "$2")
module_dir=${3:-}
check=$src/tests/lua/stubs_check.lua
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
STOCK_GLOBALS=$(lua5.4 -e 'for k in pairs(_G) do io.write(k, " ") end')
export STOCK_GLOBALS

run_check() { # STUB_DIR: runs every way there is; fails if any fails
  local status=0
  "$bin" run "$check" "$1"/*.lua || status=1
  if [ -n "$module_dir" ]; then
    LUA_CPATH="$module_dir/?.so;;" lua5.4 "$check" "$1"/*.lua || status=1
  fi
  return $status
}

run_check "$src/types" >"$dir/out" 2>&1 || { cat "$dir/out"; echo "FAIL: the stubs and the modules differ"; exit 1; }
cat "$dir/out"
want=1
[ -n "$module_dir" ] && want=2
[ "$(grep -c '^stubs: ok' "$dir/out")" -eq "$want" ] \
  || { echo "FAIL: expected $want 'stubs: ok' lines"; exit 1; }

# A stub set that lacks goroutine.sleep and Channel:cap, and has a
# goroutine.teleport that does not exist.
mkdir "$dir/broken"
cp "$src"/types/*.lua "$dir/broken/"
sed -i -e '/^function goroutine\.sleep(/d' -e '/^function Channel:cap(/d' \
  -e 's/^return goroutine$/function goroutine.teleport() end\n&/' "$dir/broken/goroutine.lua"
if run_check "$dir/broken" >"$dir/broken.out" 2>&1; then
  cat "$dir/broken.out"; echo "FAIL: the check passed stubs that differ"; exit 1
fi
for line in 'no stub for goroutine.sleep' 'no stub for goroutine.Channel.cap' \
  'stub for something that does not exist: goroutine.teleport'; do
  grep -qF "$line" "$dir/broken.out" \
    || { cat "$dir/broken.out"; echo "FAIL: the check did not say: $line"; exit 1; }
done
echo "stubs check: ok"
