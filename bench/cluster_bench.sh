#!/usr/bin/env bash
# Several goroutined nodes on one Redis, on loopback: what a second and a
# third node change, and how long a killed node's work waits.
#
# One redis-server (AOF, appendfsync APPENDFSYNC, noeviction), started here
# on a free port, and nodes of build/normal/goroutined on it
# (`serve --store redis://... --node-id bench-nodeK --lease-ms LEASE_MS`).
#
# 1. Throughput: 1, then 2, then 3 fresh nodes on an emptied database; one
#    pool of WORKERS workers (a cluster-wide limit, the same in every run);
#    JOBS `return 1+1` tasks from CLIENTS clients, submit i of each client to
#    the next node in turn, counted until none is queued or running
#    (build/normal/bench/store_bench with TARGETS=). Runs alternate
#    (1, 2, 3 nodes, 1, 2, 3, ...), RUNS of each; medians of the rate, of
#    the end-to-end latency (p50, p99: created -> finished, from each
#    record), of the 202's p99, and of the CPU per task of all the nodes
#    together and of redis-server, with the machine's floor
#    (bench_runtime --floor).
# 2. Recovery: 3 nodes, a pool of WORKERS workers, RECOVERY_TASKS tasks on
#    each node that sleep RECOVERY_SLEEP_MS (max_attempts 2); once the third
#    node runs some of its own, `kill -9` it, then poll the API of the first
#    node: the time from the kill until the first of its records runs
#    elsewhere, until none is queued or running on the dead node, and until
#    all have ended; and how they ended.
#
#   bench/cluster_bench.sh
#   JOBS=3000 RUNS=1 bench/cluster_bench.sh          # a quick look
#   APPENDFSYNC=always bench/cluster_bench.sh        # what an fsync per write costs
#
# Settings: JOBS (10000), CLIENTS (16), WORKERS (6), RUNS (3), LEASE_MS
# (3000), APPENDFSYNC (everysec), RECOVERY_TASKS (40), RECOVERY_SLEEP_MS
# (100); PARTS=1 or PARTS=2 runs one part.
#
# WORKERS is 6 by default because it splits evenly over 1, 2 and 3 nodes,
# and it stays the same in every run because it is the whole cluster's
# limit. On a machine of 2 cores the nodes, Redis and the clients share the
# same two cores whatever the number of nodes, so the comparison shows what
# coordinating nodes costs (claims and ends through Redis from more
# processes, each with its own threads), not what more machines would add:
# a scale-out figure needs a core or more per node. A figure, not a test:
# it fails only when something does not work.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-10000} CLIENTS=${CLIENTS:-16} WORKERS=${WORKERS:-6} RUNS=${RUNS:-3}
LEASE_MS=${LEASE_MS:-3000} APPENDFSYNC=${APPENDFSYNC:-everysec} PARTS=${PARTS:-12}
RECOVERY_TASKS=${RECOVERY_TASKS:-40} RECOVERY_SLEEP_MS=${RECOVERY_SLEEP_MS:-100}
die() { echo "cluster_bench: $*" >&2; exit 1; }
for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || die "no $tool (scripts/setup.sh installs it)"
done

"$root/scripts/build.sh" normal
bin=$root/build/normal/goroutined
store_bench=$root/build/normal/bench/store_bench

work=$(mktemp -d /tmp/cluster_bench.XXXXXX)
redis_pid=""
node_pid=() node_port=()
stop_nodes() {
  local pid
  for pid in "${node_pid[@]}"; do
    [[ -n $pid ]] && kill "$pid" 2>/dev/null
  done
  for pid in "${node_pid[@]}"; do
    [[ -n $pid ]] && { wait "$pid" 2>/dev/null || true; }
  done
  node_pid=() node_port=()
}
cleanup() {
  stop_nodes
  [[ -n $redis_pid ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
  --appendfsync "$APPENDFSYNC" --maxmemory-policy noeviction --logfile "$work/redis.log" &
redis_pid=$!
for _ in $(seq 1 250); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.02; done
redis-cli -p "$rport" ping >/dev/null || die "redis-server did not start"
redis_url="redis://127.0.0.1:$rport/0"

# Node K of the cluster: its pid and port in node_pid[K-1], node_port[K-1].
start_node() {
  local k=$1 log=$work/node$1.log port=""
  : >"$log"
  "$bin" serve --listen 127.0.0.1:0 --store "$redis_url" --node-id "bench-node$k" \
    --lease-ms "$LEASE_MS" --log-level warn --grace-ms 1000 \
    --max-results $((JOBS * 2)) --max-queued 0 2>"$log" &
  node_pid[k - 1]=$!
  for _ in $(seq 1 500); do
    port=$(sed -nE 's/.*listening on http:\/\/127\.0\.0\.1:([0-9]+).*/\1/p' "$log")
    [[ -n $port ]] && break
    sleep 0.02
  done
  [[ -n $port ]] || die "node $k did not start: $(cat "$log")"
  node_port[k - 1]=$port
}

start_cluster() {
  redis-cli -p "$rport" flushdb >/dev/null
  local k
  for k in $(seq 1 "$1"); do start_node "$k"; done
}

# CPU seconds (user + system) of the processes named, together.
cpu_s() {
  local ticks=0 pid
  for pid in "$@"; do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$ticks $(getconf CLK_TCK)" | awk '{printf "%.3f", $1 / $2}'
}

floor=$("$root/build/normal/bench/bench_runtime" --floor) || die "bench_runtime --floor failed"
echo "floor of this machine: $floor"

if [[ $PARTS == *1* ]]; then
  : >"$work/results"
  for run in $(seq 1 "$RUNS"); do
    for nodes in 1 2 3; do
      start_cluster "$nodes"
      targets=$(printf 'http://127.0.0.1:%s,' "${node_port[@]}")
      nodes_cpu0=$(cpu_s "${node_pid[@]}") redis_cpu0=$(cpu_s "$redis_pid")
      line=$(TARGETS=${targets%,} TASKS=$JOBS CLIENTS=$CLIENTS POOL_WORKERS=$WORKERS \
        "$store_bench") || die "store_bench failed with $nodes nodes"
      nodes_cpu=$(echo "$(cpu_s "${node_pid[@]}") $nodes_cpu0" | awk '{print $1 - $2}')
      redis_cpu=$(echo "$(cpu_s "$redis_pid") $redis_cpu0" | awk '{print $1 - $2}')
      stop_nodes
      line="${line%\}},\"nodes_cpu_s\":$nodes_cpu,\"redis_cpu_s\":$redis_cpu}"
      echo "run $run: $line" >&2
      echo "$line" >>"$work/results"
    done
  done
  python3 - "$work/results" "$JOBS" "$CLIENTS" "$WORKERS" "$APPENDFSYNC" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
jobs, clients, workers, fsync = sys.argv[2:6]
print(f"1. {jobs} tasks (`return 1+1`), {clients} clients round-robin over the "
      f"nodes, a pool of {workers} workers (cluster-wide), AOF {fsync}; "
      f"medians of {len(rows) // 3} runs")
print("   nodes   tasks/s  vs 1   e2e p50   e2e p99   202 p99   CPU/task: nodes  redis"
      "   not succeeded  not listed")
base = None
for n in (1, 2, 3):
    mine = [r for r in rows if r["nodes"] == n]
    med = lambda k: statistics.median(r[k] for r in mine)
    rate = med("rate")
    base = base or rate
    node_us = statistics.median(r["nodes_cpu_s"] / r["tasks"] * 1e6 for r in mine)
    redis_us = statistics.median(r["redis_cpu_s"] / r["tasks"] * 1e6 for r in mine)
    print(f"   {n:5d}  {rate:8.0f}  {rate / base:4.2f}x  {med('p50_ms'):6.0f} ms"
          f" {med('p99_ms'):6.0f} ms  {med('accept_p99_ms'):6.2f} ms"
          f"  {node_us:12.0f} us {redis_us:4.0f} us  {sum(r['other'] for r in mine):14d}"
          f"  {sum(r['unlisted'] for r in mine):10d}")
print("   (e2e: created -> finished of each record; CPU: all the nodes together, "
      "and redis-server; the last two columns: records of all runs that the "
      "pool's list showed in another state, or did not show)")
EOF
fi

if [[ $PARTS == *2* ]]; then
  start_cluster 3
  disown "${node_pid[2]}" # killed below: no notice of it from this shell
  python3 - "$WORKERS" "$RECOVERY_TASKS" "$RECOVERY_SLEEP_MS" "$LEASE_MS" \
    "${node_pid[2]}" "${node_port[@]}" <<'EOF'
import http.client, json, os, signal, sys, time
workers, per_node, sleep_ms, lease_ms, victim_pid = map(int, sys.argv[1:6])
ports = [int(p) for p in sys.argv[6:]]
conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in ports]

def call(k, method, path, body=None):
    data = json.dumps(body) if body is not None else None
    conns[k].request(method, path, data,
                     {"Content-Type": "application/json"} if data else {})
    r = conns[k].getresponse()
    return r.status, json.loads(r.read() or b"null")

def bounded(seconds, step, done):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if done():
            return True
        time.sleep(step)
    return False

status, _ = call(0, "POST", "/v1/pools", {"name": "r", "workers": workers,
                                          "queue_size": 100000})
assert status == 201, f"pool: {status}"
for k in range(1, len(ports)):
    if not bounded(30, 0.01, lambda: call(k, "GET", "/v1/pools/r")[0] == 200):
        sys.exit(f"cluster_bench: node {k + 1} did not see the pool within 30 s")
code = f"goroutine.sleep({sleep_ms}) return 1+1"
victim = []
for i in range(per_node * len(ports)):
    k = i % len(ports)
    status, body = call(k, "POST", "/v1/pools/r/tasks",
                        {"code": code, "max_attempts": 2})
    assert status == 202, f"submit: {status} {body}"
    if k == len(ports) - 1:
        victim.append(body["id"])

def view(i):
    status, body = call(0, "GET", f"/v1/pools/r/tasks/{i}")
    assert status == 200, f"GET {i}: {status}"
    return body

# Kill the third node once it runs some of its own tasks (up to 10 s).
if not bounded(10, 0.01, lambda: any(view(i)["state"] == "running" for i in victim[:8])):
    sys.exit("cluster_bench: the third node ran none of its tasks within 10 s")
killed = time.monotonic()
os.kill(victim_pid, signal.SIGKILL)
# Its records as the kill left them: nothing changes them until a live node
# takes them over, a lease later.
before = {i: view(i) for i in victim}
print(f"2. recovery: 3 nodes, a pool of {workers} workers, {per_node} tasks per node "
      f"that sleep {sleep_ms} ms (max_attempts 2), lease {lease_ms} ms; at the kill the "
      f"third node had {sum(v['state'] == 'running' for v in before.values())} running, "
      f"{sum(v['state'] == 'queued' for v in before.values())} queued, "
      f"{sum(v['state'] not in ('running', 'queued') for v in before.values())} ended")

def on_dead_node(v, was):
    """queued, or running as the dead node's attempt"""
    if v["state"] == "queued":
        return True
    if v["state"] != "running":
        return False
    if "node" in v:
        return v["node"] == was.get("node")
    return was["state"] == "running" and v.get("attempt") == was.get("attempt")

first = moved = ended = None
now = {}
end = killed + 120
while time.monotonic() < end and ended is None:
    now = {i: view(i) for i in victim}
    t = time.monotonic() - killed
    if first is None and any(
            not on_dead_node(v, before[i]) and v != before[i] for i, v in now.items()):
        first = t
    if moved is None and not any(on_dead_node(v, before[i]) for i, v in now.items()):
        moved = t
    if all(v["state"] not in ("queued", "running") for v in now.values()):
        ended = t
    time.sleep(0.02)

fmt = lambda t: "not within 120 s" if t is None else f"{t * 1000:.0f} ms"
states = {}
for v in now.values():
    key = f"{v['state']} (attempt {v.get('attempt')})"
    states[key] = states.get(key, 0) + 1
print(f"   from the kill: first of its records running elsewhere or ended {fmt(first)}; "
      f"none queued or running on the dead node {fmt(moved)}; all ended {fmt(ended)}")
print("   its records: " + ", ".join(f"{n} {k}" for k, n in sorted(states.items())))
EOF
  node_pid[2]=""
  stop_nodes
fi
