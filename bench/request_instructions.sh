#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: a
# figure that does not move with the machine's load, unlike a rate or a CPU
# time, so that a change of a few percent on the request path can be seen.
#
# For each scenario, the server runs under callgrind twice, answering
# N_SMALL and then N_LARGE requests sent by one curl on one kept-alive
# connection; the difference of the two totals over N_LARGE - N_SMALL is
# what one request costs, start-up and shutdown cancelled out. Scenarios:
#   B  GET /v1/pools/bench (a pool's statistics)
#   A  POST /v1/run {"code":"return 1+1"}
#   F  POST /v1/run {"function":"bench_add"} (stored code `return 1+1`)
#   C  F's POST answered by bench/mhd_fixed with goroutined's connection
#      memory: what libmicrohttpd itself costs
# Beside each total: the bytes libmicrohttpd clears per request (it zeroes
# a connection's memory pool as it reuses it; callgrind counts `rep stosb`
# once per byte, so this part is bytes, not instructions, and is cheap per
# unit on real hardware).
#
# Kernel time is not counted (callgrind sees user space only): compare
# with bench/http_bench.sh's CPU per request for the whole.
#
#   bench/request_instructions.sh            # needs valgrind and curl
#   N_SMALL=200 N_LARGE=1200 bench/request_instructions.sh
#   GOROUTINED=/tmp/old/goroutined bench/request_instructions.sh   # another build
#   LOG_LEVEL=info SCENARIOS="B A" bench/request_instructions.sh
#       the server's log level (warn unless given: info writes a line per
#       request) and which scenarios to count (B A F C unless given)
# It builds with scripts/build.sh normal when the binaries are missing,
# uses ports from 127.0.0.1 only, and stops every server it started.
set -euo pipefail

N_SMALL=${N_SMALL:-300}
N_LARGE=${N_LARGE:-1300}
LOG_LEVEL=${LOG_LEVEL:-warn}
SCENARIOS=${SCENARIOS:-B A F C}
root=$(cd "$(dirname "$0")/.." && pwd)
goroutined=${GOROUTINED:-"$root/build/normal/goroutined"}
mhd_fixed="$root/build/normal/bench/mhd_fixed"
work=$(mktemp -d /tmp/request_instructions.XXXXXX)
server_pid=""

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

die() {
  echo "request_instructions: $*" >&2
  exit 1
}

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v curl >/dev/null || die "curl is not installed"
if [ ! -x "$goroutined" ] || [ ! -x "$mhd_fixed" ]; then
  "$root/scripts/build.sh" normal >&2
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# Waits up to 60 s for the server under valgrind to answer PATH.
wait_up() {
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$server_pid" 2>/dev/null || die "the server exited at start"
    curl -s -o /dev/null -m 2 "$base$1" && return 0
    sleep 0.2
  done
  die "the server does not answer on $base after 60 s"
}

# run SCENARIO N: the callgrind totals of one server run answering N
# requests; prints "instructions memset_bytes".
run() {
  local scenario=$1 n=$2 out="$work/cg.out" urls="" i
  rm -f "$out"
  if [ "$scenario" = C ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" "$mhd_fixed" "$port" 22528 \
      2>"$work/vg.err" &
    server_pid=$!
    wait_up /
  else
    valgrind --tool=callgrind --callgrind-out-file="$out" "$goroutined" serve \
      --listen "127.0.0.1:$port" --store memory: --log-level "$LOG_LEVEL" --http-threads 1 \
      --log-file "$work/server.log" 2>"$work/vg.err" &
    server_pid=$!
    wait_up /healthz
    curl -s -o /dev/null -X POST "$base/v1/pools" -H 'Content-Type: application/json' \
      -d '{"name":"bench","workers":2}'
    curl -s -o /dev/null -X PUT "$base/v1/functions/bench_add" \
      -H 'Content-Type: application/json' -d '{"code":"return 1+1"}'
  fi
  local path=/v1/run
  [ "$scenario" = B ] && path=/v1/pools/bench
  for ((i = 0; i < n; i++)); do urls+="$base$path "; done
  # shellcheck disable=SC2086 # one URL per word: curl keeps the connection
  case $scenario in
  B) curl -s $urls >/dev/null ;;
  A) curl -s -H 'Content-Type: application/json' -d '{"code":"return 1+1"}' $urls >/dev/null ;;
  F | C) curl -s -H 'Content-Type: application/json' -d '{"function":"bench_add"}' $urls >/dev/null ;;
  esac
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  [ -s "$out" ] || die "callgrind wrote nothing (see $work/vg.err)"
  local total memset
  total=$(awk '/^totals:/ { print $2 }' "$out")
  memset=$(callgrind_annotate --inclusive=no "$out" 2>/dev/null |
    awk '/__memset_/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
  echo "$total $memset"
}

printf '%-44s %14s %22s\n' scenario "instructions" "of which memset bytes"
for scenario in $SCENARIOS; do
  read -r t1 m1 < <(run "$scenario" "$N_SMALL")
  read -r t2 m2 < <(run "$scenario" "$N_LARGE")
  n=$((N_LARGE - N_SMALL))
  case $scenario in
  B) name="B GET /v1/pools/bench (goroutined)" ;;
  A) name="A POST /v1/run code (goroutined)" ;;
  F) name="F POST /v1/run function (goroutined)" ;;
  C) name="C F's POST, fixed answer (minimal MHD)" ;;
  esac
  awk -v name="$name" -v t=$((t2 - t1)) -v m=$((m2 - m1)) -v n=$n \
    'BEGIN { printf "%-44s %14.0f %22.0f\n", name, t / n, m / n }'
done
echo "per request: the difference of $N_LARGE and $N_SMALL requests over one connection," \
  "log level $LOG_LEVEL," \
  "user space only (valgrind $(valgrind --version | sed 's/valgrind-//'))"
