#!/usr/bin/env bash
# Runs one of the README's sessions, as written, against a real server on
# a free port, and checks what it prints:
#   readme_session.sh GOROUTINED README          the curl session
#   readme_session.sh GOROUTINED README client   the client session, with
#                                                the goroutined under test
#                                                first on PATH
set -euo pipefail
bin=$(realpath "$1")
readme=$2
which=${3:-curl}
case "$which" in
  curl) marker=session ;;
  client) marker=client-session ;;
  *) echo "usage: $0 GOROUTINED README [curl|client]" >&2; exit 2 ;;
esac
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
sed -n "/<!-- $marker:start -->/,/<!-- $marker:end -->/p" "$readme" \
  | sed '1,2d;$d' | sed '$d' \
  | sed "s/127\.0\.0\.1:8080/127.0.0.1:$port/g" >"$dir/session.sh"

# Lines that must be there whole, then text that must be in some line.
if [ "$which" = curl ]; then
  lines=()
  wants=('{"status":"ok"}' '"values":[5]' '"values":["checked web-01"]'
    '"completed":1' '"values":[[1,4,9]]' '"attempt":3,"max_attempts":3'
    '"retried":1' '"status":400' 'snippet:1:' '"name":"times10","version":1'
    '"values":[70]')
  bash -e "$dir/session.sh" >"$dir/out" 2>&1 || { cat "$dir/out"; exit 1; }
else
  # The README puts build/normal on PATH: the binary under test is there.
  grep -q 'build/normal' "$dir/session.sh" || { echo "the session does not put build/normal on PATH"; exit 1; }
  mkdir -p "$dir/build/normal"
  ln -s "$bin" "$dir/build/normal/goroutined"
  lines=(5 70 'exit 1' 'exit 100' '[1,4,9]' 'retried 1'
    'stored times10 version 1' 'created pool checks: 4 workers, queue of 8')
  wants=('value 1:  checked web-01' '"completed":1' 'attempt:  3 of 3'
    'attempt 1: failed: snippet:1: db-2 is down' 'failed     3/3'
    'one task: task-' 'pool=checks' 'goroutined: Lua Syntax Error (400): snippet:1:')
  (cd "$dir" && env -u GOROUTINED_TOKEN bash -e "$dir/session.sh") >"$dir/out" 2>&1 || { cat "$dir/out"; exit 1; }
fi
for line in "${lines[@]}"; do
  grep -qxF -- "$line" "$dir/out" || { echo "missing line from the output: $line"; cat "$dir/out"; exit 1; }
done
for want in "${wants[@]}"; do
  grep -qF -- "$want" "$dir/out" || { echo "missing from the output: $want"; cat "$dir/out"; exit 1; }
done
echo "README $which session: ok"
