#!/usr/bin/env bash
# Runs the README's client session (between <!-- client-session:start -->
# and <!-- client-session:end -->), as written, with the goroutined under
# test first on PATH, against a real server on a free port, and checks
# what it prints. Usage: readme_client_session.sh GOROUTINED README
set -euo pipefail
bin=$(realpath "$1")
readme=$2
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
: >"$dir/server.log" # there before the server's shell opens it: sed reads it at once
(cd "$dir" && exec "$bin" serve --listen 127.0.0.1:0 2>"$dir/server.log") &
pid=$!
port=""
for _ in $(seq 1 500); do
  port=$(sed -nE 's/.*listening on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$dir/server.log")
  [ -n "$port" ] && break
  sleep 0.02
done
[ -n "$port" ] || { echo "server did not start"; cat "$dir/server.log"; exit 1; }
# The session between the markers, with the server's real port, and the
# binary under test where the README puts build/normal on PATH.
sed -n '/<!-- client-session:start -->/,/<!-- client-session:end -->/p' "$readme" \
  | sed '1,2d;$d' | sed '$d' \
  | sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/g" >"$dir/session.sh"
grep -q 'build/normal' "$dir/session.sh" || { echo "the session does not put build/normal on PATH"; exit 1; }
mkdir "$dir/build" "$dir/build/normal"
ln -s "$bin" "$dir/build/normal/goroutined"
(cd "$dir" && env -u GOROUTINED_TOKEN bash -e "$dir/session.sh") >"$dir/out" 2>&1 || { cat "$dir/out"; exit 1; }
# Lines that must be there whole, then text that must be in some line.
for line in 5 70 'exit 1' 'exit 100' '[1,4,9]' 'retried 1' \
  'stored times10 version 1' 'created pool checks: 4 workers, queue of 8'; do
  grep -qxF -- "$line" "$dir/out" || { echo "missing line from the output: $line"; cat "$dir/out"; exit 1; }
done
for want in 'value 1:  checked web-01' '"completed":1' 'attempt:  3 of 3' \
  'attempt 1: failed: snippet:1: db-2 is down' 'failed     3/3' \
  'one task: task-' 'pool=checks' 'goroutined: Lua Syntax Error (400): snippet:1:'; do
  grep -qF -- "$want" "$dir/out" || { echo "missing from the output: $want"; cat "$dir/out"; exit 1; }
done
echo "README client session: ok"
