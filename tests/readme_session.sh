#!/usr/bin/env bash
# Runs the README's curl session, as written, against a real server on a
# free port, and checks what it prints. Usage: readme_session.sh GOROUTINED README
set -euo pipefail
bin=$1
bin=$(realpath "$bin")
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
# The session between the markers, with the server's real port.
sed -n '/<!-- session:start -->/,/<!-- session:end -->/p' "$readme" \
  | sed '1,2d;$d' | sed '$d' \
  | sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/g" >"$dir/session.sh"
bash -e "$dir/session.sh" >"$dir/out" 2>&1 || { cat "$dir/out"; exit 1; }
for want in '{"status":"ok"}' '"values":[5]' '"values":["checked web-01"]' \
  '"completed":1' '"values":[[1,4,9]]' '"attempt":3,"max_attempts":3' \
  '"retried":1' '"status":400' 'snippet:1:' '"name":"times10","version":1' \
  '"values":[70]'; do
  grep -qF "$want" "$dir/out" || { echo "missing from the output: $want"; cat "$dir/out"; exit 1; }
done
echo "README session: ok"
