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
#   goroutined-c  the same server, submitted to by a C client instead
#               (build/normal/bench/store_bench in TARGETS mode: PRODUCERS
#               threads, each on a kept-alive libcurl connection), to show what
#               the server does when its producers cost little
# and reads each job's end-to-end latency (accepted -> finished) as each
# side records it, and the CPU each process spent per job: the producers
# (the Node process, which for BullMQ also runs its worker), goroutined,
# and redis-server. Runs alternate (bullmq, goroutined, ...), RUNS of each;
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

# CPU time (user + system) of a process so far, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# A side's JSON line with its CPU per job added: the producers (seconds
# that /usr/bin/time wrote to a file), goroutined and redis-server (ticks).
with_cpu() { # line time_file server_ticks redis_ticks
  python3 - "$1" "$2" "$3" "$4" "$hz" "$JOBS" <<'PY'
import json, sys
line, tfile, server, redis, hz, jobs = sys.argv[1:7]
r = json.loads(line)
prod = sum(float(x) for x in open(tfile).read().split())
per = lambda s: round(s * 1e6 / float(jobs))
r["cpu_us_per_job"] = {"producers": per(prod), "server": per(int(server) / float(hz)),
                       "redis": per(int(redis) / float(hz))}
print(json.dumps(r))
PY
}

# A fresh goroutined on an emptied database; its port in $port.
start_goroutined() {
  redis-cli -p "$rport" flushdb >/dev/null
  : >"$work/server.log"
  (cd "$work" && exec "$root/build/normal/goroutined" serve --listen 127.0.0.1:0 \
    --workers "$WORKERS" --log-level warn --max-results $((JOBS * 2)) --max-queued 0 \
    --store "$redis_url" 2>"$work/server.log") &
  server_pid=$!
  port=""
  for _ in $(seq 1 500); do
    port=$(sed -nE 's/.*listening on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$work/server.log")
    [[ -n $port ]] && break
    sleep 0.02
  done
  [[ -n $port ]] || die "goroutined did not start: $(cat "$work/server.log")"
}

stop_goroutined() {
  kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
}

run_goroutined() {
  start_goroutined
  local s0 r0 line
  s0=$(ticks "$server_pid"); r0=$(ticks "$redis_pid")
  line=$(/usr/bin/time -o "$work/time" -f "%U %S" node "$root/bench/bullmq/peer.mjs" \
    goroutined "http://127.0.0.1:$port" "$JOBS" "$PRODUCERS" "$WORKERS")
  with_cpu "$line" "$work/time" $(($(ticks "$server_pid") - s0)) $(($(ticks "$redis_pid") - r0))
  stop_goroutined
}

# The same server, its producers in C: no Node process on the machine.
run_goroutined-c() {
  start_goroutined
  local s0 r0 line
  s0=$(ticks "$server_pid"); r0=$(ticks "$redis_pid")
  line=$(TARGETS="http://127.0.0.1:$port" TASKS="$JOBS" CLIENTS="$PRODUCERS" \
    POOL_WORKERS="$WORKERS" TARGET_BODY='{"code":"local a, b = ... return a + b","args":[1,1]}' \
    /usr/bin/time -o "$work/time" -f "%U %S" "$root/build/normal/bench/store_bench") ||
    die "store_bench failed"
  line=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print(json.dumps({"kind": "goroutined-c", "jobs": r["tasks"], "rate": r["rate"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]}))' "$line")
  with_cpu "$line" "$work/time" $(($(ticks "$server_pid") - s0)) $(($(ticks "$redis_pid") - r0))
  stop_goroutined
}

run_bullmq() {
  redis-cli -p "$rport" flushdb >/dev/null
  local r0 line
  r0=$(ticks "$redis_pid")
  line=$(/usr/bin/time -o "$work/time" -f "%U %S" node "$root/bench/bullmq/peer.mjs" \
    bullmq "$redis_url" "$JOBS" "$PRODUCERS" "$WORKERS")
  with_cpu "$line" "$work/time" 0 $(($(ticks "$redis_pid") - r0))
}

floor=$("$root/build/normal/bench/bench_runtime" --floor) || die "bench_runtime --floor failed"
: >"$work/results"
for run in $(seq 1 "$RUNS"); do
  for side in bullmq goroutined goroutined-c; do
    line=$("run_$side")
    echo "run $run: $line" >&2
    echo "$line" >>"$work/results"
  done
done

python3 - "$work/results" "$floor" "$JOBS" "$PRODUCERS" "$WORKERS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
floor, jobs, producers, workers = sys.argv[2:6]
kinds = ("bullmq", "goroutined", "goroutined-c")
med = {}
for kind in kinds:
    mine = [r for r in rows if r["kind"] == kind]
    med[kind] = {k: statistics.median(r[k] for r in mine) for k in ("rate", "p50_ms", "p99_ms")}
    for k in ("producers", "server", "redis"):
        med[kind][k] = statistics.median(r["cpu_us_per_job"][k] for r in mine)
print(f"floor of this machine: {floor}")
print(f"{jobs} jobs, {producers} producers, {workers} workers, one redis-server "
      f"(AOF everysec); medians of {len(rows) // len(kinds)} runs each")
print("  side              jobs/s       p50       p99   CPU per job: producers  server   redis   total")
for kind, m in med.items():
    total = m["producers"] + m["server"] + m["redis"]
    print(f"  {kind:14s} {m['rate']:8.0f} {m['p50_ms']:6.0f} ms {m['p99_ms']:6.0f} ms"
          f"   {m['producers']:9.0f} us {m['server']:5.0f} us {m['redis']:5.0f} us {total:5.0f} us")
b, g, c = med["bullmq"], med["goroutined"], med["goroutined-c"]
print(f"  goroutined/bullmq throughput: {g['rate'] / b['rate']:.2f}x (target >= 2.0x); "
      f"p99 {g['p99_ms']:.0f} vs {b['p99_ms']:.0f} ms (target: no worse)")
print(f"  with C producers: {c['rate'] / b['rate']:.2f}x, p99 {c['p99_ms']:.0f} ms")
print("  (BullMQ's worker runs in its producers' Node process: its server column is 0;")
print("   redis counts the runs' reads of the results too)")
EOF
