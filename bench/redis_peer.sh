#!/usr/bin/env bash
# goroutined on Redis against BullMQ on the same redis-server, on loopback.
#
# One redis-server (AOF, appendfsync everysec, noeviction: the settings the
# README asks for), started here on a free port. Each run submits JOBS
# trivial jobs (a + b) from PRODUCERS concurrent producers, run WORKERS at
# a time, and times them from the first submit to the last completion:
#   bullmq      bench/bullmq/peer.mjs (BullMQ, pinned in its package.json):
#               Queue.add per job, a Worker with concurrency WORKERS
#   goroutined  `goroutined serve --store redis://...` with a pool of
#               WORKERS workers; the same Node client submits over HTTP
#               (kept-alive connections)
# and reads each job's end-to-end latency (accepted -> finished) as each
# side records it. Runs alternate (bullmq, goroutined, ...), RUNS of each;
# medians are printed with the machine's floor (bench_runtime --floor).
#
#   bench/redis_peer.sh
#   JOBS=5000 RUNS=1 bench/redis_peer.sh           # a quick look
# Settings: JOBS (20000), PRODUCERS (16), WORKERS (2), RUNS (3). A figure,
# not a test: it fails only when something does not work.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-20000} PRODUCERS=${PRODUCERS:-16} WORKERS=${WORKERS:-2} RUNS=${RUNS:-3}
die() { echo "redis_peer: $*" >&2; exit 1; }
command -v redis-server >/dev/null || die "no redis-server (scripts/setup.sh installs it)"
command -v node >/dev/null || die "no node (scripts/setup.sh installs it)"

"$root/scripts/build.sh" normal
if [[ ! -d $root/bench/bullmq/node_modules || $root/bench/bullmq/node_modules -ot $root/bench/bullmq/package-lock.json ]]; then
  (cd "$root/bench/bullmq" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed in bench/bullmq"
  touch "$root/bench/bullmq/node_modules"
fi

work=$(mktemp -d /tmp/redis_peer.XXXXXX)
redis_pid="" server_pid=""
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
  --appendfsync everysec --maxmemory-policy noeviction --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 1 250); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.02; done
redis-cli -p "$rport" ping >/dev/null || die "redis-server did not start"
redis_url="redis://127.0.0.1:$rport/0"

# One goroutined run: a fresh server on an emptied database.
run_goroutined() {
  redis-cli -p "$rport" flushdb >/dev/null
  : >"$work/server.log"
  (cd "$work" && exec "$root/build/normal/goroutined" serve --listen 127.0.0.1:0 \
    --workers "$WORKERS" --log-level warn --max-results $((JOBS * 2)) --max-queued 0 \
    --store "$redis_url" 2>"$work/server.log") &
  server_pid=$!
  local port=""
  for _ in $(seq 1 500); do
    port=$(sed -nE 's/.*listening on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$work/server.log")
    [[ -n $port ]] && break
    sleep 0.02
  done
  [[ -n $port ]] || die "goroutined did not start: $(cat "$work/server.log")"
  node "$root/bench/bullmq/peer.mjs" goroutined "http://127.0.0.1:$port" "$JOBS" "$PRODUCERS" "$WORKERS"
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

run_bullmq() {
  redis-cli -p "$rport" flushdb >/dev/null
  node "$root/bench/bullmq/peer.mjs" bullmq "$redis_url" "$JOBS" "$PRODUCERS" "$WORKERS"
}

floor=$("$root/build/normal/bench/bench_runtime" --floor) || die "bench_runtime --floor failed"
: >"$work/results"
for run in $(seq 1 "$RUNS"); do
  for side in bullmq goroutined; do
    line=$("run_$side")
    echo "run $run: $line" >&2
    echo "$line" >>"$work/results"
  done
done

python3 - "$work/results" "$floor" "$JOBS" "$PRODUCERS" "$WORKERS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
floor, jobs, producers, workers = sys.argv[2:6]
med = {}
for kind in ("bullmq", "goroutined"):
    mine = [r for r in rows if r["kind"] == kind]
    med[kind] = {k: statistics.median(r[k] for r in mine) for k in ("rate", "p50_ms", "p99_ms")}
print(f"floor of this machine: {floor}")
print(f"{jobs} jobs, {producers} producers, {workers} workers, one redis-server "
      f"(AOF everysec); medians of {len(rows) // 2} runs each")
for kind, m in med.items():
    print(f"  {kind:10s} {m['rate']:8.0f} jobs/s   p50 {m['p50_ms']:6.0f} ms   p99 {m['p99_ms']:6.0f} ms")
b, g = med["bullmq"], med["goroutined"]
print(f"  goroutined/bullmq throughput: {g['rate'] / b['rate']:.2f}x (target >= 2.0x); "
      f"p99 {g['p99_ms']:.0f} vs {b['p99_ms']:.0f} ms (target: no worse)")
EOF
