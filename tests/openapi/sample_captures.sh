#!/usr/bin/env bash
# sample_captures.sh OUT.jsonl - exercises every operation of a real
# goroutined (successes and error statuses) with curl and writes each
# exchange as one JSON line to OUT.jsonl, in the format validate.mjs reads.
# Starts three servers on free ports (plain, --token, --max-body 1K) and
# stops them when done. The binary is $GOROUTINED, or build/normal/goroutined.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 OUT.jsonl" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
bin=${GOROUTINED:-$here/../../build/normal/goroutined}
bin=$(realpath "$bin")
out=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
for tool in curl node; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is needed" >&2; exit 1; }
done
[[ -x $bin ]] || { echo "$0: no server binary at $bin (run scripts/build.sh normal)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME ARGS...: runs a server and sets $base to its URL.
start() {
  local name=$1; shift
  : >"$tmp/$name.log"
  mkdir -p "$tmp/$name.d" # its store, sqlite:goroutined.db, goes there
  (cd "$tmp/$name.d" && exec "$bin" serve --listen 127.0.0.1:0 "$@" 2>>"$tmp/$name.log") &
  pids+=($!)
  for _ in $(seq 100); do
    base=$(grep -o 'listening on http://[0-9.:]*' "$tmp/$name.log" | head -n1 | sed 's/listening on //') || true
    [[ -n $base ]] && return 0
    sleep 0.1
  done
  echo "$0: server $name did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1
}

# req METHOD PATH [curl options...]: one exchange against $base, kept as
# $tmp/ex/N.{req,head,body}; sets $status and $body for the caller.
mkdir "$tmp/ex"
n=0
req() {
  local method=$1 path=$2; shift 2
  local f=$tmp/ex/$((n += 1))
  local how=(-X "$method" -o "$f.body")
  # curl --head reads no body (and -X HEAD would wait for one): keep it empty.
  [[ $method == HEAD ]] && { how=(--head -o /dev/null); : >"$f.body"; }
  status=$(curl -sS --max-time 30 "${how[@]}" -D "$f.head" \
    -w '%{http_code}' "$@" "$base$path")
  printf '%s\n%s\n%s\n' "$method" "$path" "$status" >"$f.req"
  body=$(cat "$f.body")
}
json() { req "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3" "${@:4}"; }
field() { node -e 'console.log(JSON.parse(process.argv[1])[process.argv[2]])' "$body" "$1"; }

# ---- the plain server -------------------------------------------------------
start plain
req GET /healthz
req HEAD /healthz
req POST /healthz
req GET /openapi.yaml
req DELETE /openapi.yaml
req GET /nope
req GET /v1/pools/                          # a trailing slash: 404
req GET /v1/pools
req PUT /v1/pools

json POST /v1/pools '{"name":"p.1","workers":2}'                 # 201
json POST /v1/pools '{"name":"p.1","workers":2}'                 # 409 exists
json POST /v1/pools '{"name":"q",'                              # 400 malformed
json POST /v1/pools '{"name":"q","workers":1,"colour":"red"}'  # 400 unknown field
json POST /v1/pools '{"name":"q","workers":0}'                  # 400 invalid
req POST /v1/pools -H 'Content-Type: text/plain' --data-binary 'x'  # 415
req GET /v1/pools/p%2E1                     # percent-encoded name
req GET /v1/pools/none                      # 404
req PATCH /v1/pools/p.1                     # 405

json POST /v1/pools/p.1/tasks '{"code":"local a, b = ... return a + b","args":[2,3]}'
task=$(field id)
json POST /v1/pools/p.1/tasks '{"code":"return +"}'            # 400 syntax error
json POST /v1/pools/none/tasks '{"code":"return 1"}'            # 404
req POST /v1/pools/p.1/tasks -H 'Content-Type: text/plain' --data-binary 'x'  # 415
req PUT /v1/pools/p.1/tasks                 # 405
req GET "/v1/pools/p.1/tasks/$task?wait=5"
req GET "/v1/pools/p.1/tasks/$task?wait=soon"  # 400 bad parameter
req GET /v1/pools/p.1/tasks/no-such-task    # 404
# Retries, lists, cancels, replays and idempotency keys.
json POST /v1/pools/p.1/tasks '{"code":"error(\"flaky\")","max_attempts":2}'
flaky=$(field id)
json POST /v1/pools/p.1/tasks '{"code":"return 1","max_attempts":0}'  # 400
json POST /v1/pools/p.1/tasks '{"code":"return 1","backoff_ms":-1}'   # 400
req GET "/v1/pools/p.1/tasks/$flaky?wait=5"  # failed, two attempts
req GET "/v1/pools/p.1/tasks?limit=1"       # a page, a Link to the next
req GET "/v1/pools/p.1/tasks?state=failed&limit=10"
req GET "/v1/pools/p.1/tasks?state=lost"    # 400
req GET "/v1/pools/p.1/tasks?limit=0"       # 400
req GET "/v1/pools/p.1/tasks?cursor=x"      # 400
req GET /v1/pools/none/tasks                # 404
req POST "/v1/pools/p.1/tasks/$flaky/retry"  # 202, attempt 3
req POST "/v1/pools/p.1/tasks/$flaky/retry"  # 409 unless it ended already
req GET "/v1/pools/p.1/tasks/$flaky?wait=5"
req POST /v1/pools/p.1/tasks/no-such-task/retry  # 404
json POST /v1/pools/p.1/retry '{"state":"failed"}'   # 200
json POST /v1/pools/p.1/retry '{"state":"succeeded"}'  # 400
json POST /v1/pools/none/retry '{"state":"failed"}'    # 404
req GET "/v1/pools/p.1/tasks/$flaky?wait=5"
json POST /v1/pools/p.1/tasks '{"code":"goroutine.sleep(60000)"}'
long=$(field id)
req DELETE "/v1/pools/p.1/tasks/$long"      # 409: cancel first
req POST "/v1/pools/p.1/tasks/$long/cancel"  # 202
req GET "/v1/pools/p.1/tasks/$long?wait=5"
req POST "/v1/pools/p.1/tasks/$long/cancel"  # 200: it had ended
req POST /v1/pools/p.1/tasks/no-such-task/cancel  # 404
req DELETE "/v1/pools/p.1/tasks/$long"      # 204
req DELETE "/v1/pools/p.1/tasks/$long"      # 404
json POST /v1/pools/p.1/tasks '{"code":"return 1"}' -H 'Idempotency-Key: sample-1'
json POST /v1/pools/p.1/tasks '{"code":"return 1"}' -H 'Idempotency-Key: sample-1'  # 202, the same id
json POST /v1/pools/p.1/tasks '{"code":"return 2"}' -H 'Idempotency-Key: sample-1'  # 422
json POST /v1/pools/p.1/tasks '{"code":"return 2"}' -H 'Idempotency-Key;'  # 400: empty
json POST /v1/pools/p.1/wait '{"timeout_ms":5000}'
req POST /v1/pools/p.1/wait                 # empty body is allowed
json POST /v1/pools/p.1/wait '{"timeout_ms":"x"}'              # 400
json POST /v1/pools/none/wait '{}'                              # 404
req POST /v1/pools/p.1/wait -H 'Content-Type: text/plain' --data-binary 'x'  # 415
req GET /v1/pools/p.1/wait                  # 405

# A pool with one worker and no queue, busy with a long sleep: 429.
json POST /v1/pools '{"name":"full","workers":1,"queue_size":0}'
json POST /v1/pools/full/tasks '{"code":"goroutine.sleep(60000)","timeout_ms":1500}'
slow=$(field id)
json POST /v1/pools/full/tasks '{"code":"return 1"}'            # 429
req GET "/v1/pools/full/tasks/$slow?wait=10"                    # timed_out
req DELETE /v1/pools/full                   # 204
req GET /v1/pools/full                      # 404 closed
req DELETE /v1/pools/none                   # 404

json POST /v1/jobs '{"code":"return {1, 2}, {a = true}, {}"}'
job1=$(field id)
json POST /v1/jobs '{"code":"error(\"boom\")"}'
job2=$(field id)
json POST /v1/jobs '{"code":"return 1","extra":1}'              # 400
req POST /v1/jobs -H 'Content-Type: text/plain' --data-binary 'x'  # 415
req PUT /v1/jobs                            # 405
req GET /v1/jobs
req GET "/v1/jobs?limit=1&state=succeeded"
req GET "/v1/jobs?limit=1001"               # 400
req GET "/v1/jobs/$job1?wait=5"
req HEAD "/v1/jobs/$job1"
req GET "/v1/jobs/$job1?wait=-1"            # 400
json POST /v1/jobs/await "{\"ids\":[\"$job1\",\"$job2\"],\"timeout_ms\":5000}"
json POST /v1/jobs/await '{"ids":["no-such-job"]}'             # 404
json POST /v1/jobs/await '{"ids":"x"}'                          # 400
req POST /v1/jobs/await -H 'Content-Type: text/plain' --data-binary 'x'  # 415
req GET /v1/jobs/await                      # 405, not a job called "await"
req GET "/v1/jobs/$job2?wait=5"
req POST "/v1/jobs/$job2/retry"             # 202, attempt 2
req GET "/v1/jobs/$job2?wait=5"
req POST "/v1/jobs/$job2/cancel"            # 200: it had ended
req DELETE "/v1/jobs/$job2"                 # 204
req GET "/v1/jobs/$job2"                    # 404 forgotten
req DELETE "/v1/jobs/$job2"                 # 404
req POST "/v1/jobs/$job2/cancel"            # 404
req POST "/v1/jobs/$job2/retry"             # 404
req PUT "/v1/jobs/$job1"                    # 405
json POST /v1/jobs '{"code":"goroutine.sleep(60000)"}' -H 'Idempotency-Key: "sample-2"'
job3=$(field id)
json POST /v1/jobs '{"code":"goroutine.sleep(60000)"}' -H 'Idempotency-Key: "sample-2"'  # 202
json POST /v1/jobs '{"code":"return 3"}' -H 'Idempotency-Key: sample-2'  # 422
req DELETE "/v1/jobs/$job3"                 # 409
req POST "/v1/jobs/$job3/retry"             # 409
req POST "/v1/jobs/$job3/cancel"            # 202

json POST /v1/run '{"code":"local n = ... return n * 2, \"x\", nil","args":[21]}'
json POST /v1/run '{"code":"error(\"no\")"}'                    # 200, success false
json POST /v1/run '{"code":"while true do end","timeout_ms":200}'  # 200, timed_out
json POST /v1/run '{"code":"return \"\\255\""}'                 # not UTF-8: fails
json POST /v1/run '{"code":"x = = 1"}'                          # 400 syntax error
json POST /v1/run '[1'                                          # 400 malformed
req POST /v1/run -H 'Content-Type: text/plain' --data-binary 'x'  # 415
req GET /v1/run                             # 405

# ---- a server that needs a token ------------------------------------------
start token --token s3cret
# Every /v1 operation answers 401 without the token.
for route in 'GET /v1/pools' 'POST /v1/pools' 'GET /v1/pools/p' 'DELETE /v1/pools/p' \
    'POST /v1/pools/p/wait' 'POST /v1/pools/p/retry' 'GET /v1/pools/p/tasks' \
    'POST /v1/pools/p/tasks' 'GET /v1/pools/p/tasks/t' 'DELETE /v1/pools/p/tasks/t' \
    'POST /v1/pools/p/tasks/t/cancel' 'POST /v1/pools/p/tasks/t/retry' 'GET /v1/jobs' \
    'POST /v1/jobs' 'POST /v1/jobs/await' 'GET /v1/jobs/j' 'DELETE /v1/jobs/j' \
    'POST /v1/jobs/j/cancel' 'POST /v1/jobs/j/retry' 'POST /v1/run'; do
  req ${route}
done
req GET /v1/pools -H 'Authorization: Bearer wrong'  # 401, wrong token
req GET /v1/pools -H 'Authorization: Bearer s3cret'
req GET /healthz                            # public

# ---- a server with a 1 KiB body limit ---------------------------------------
start small --max-body 1K
big=$(printf '{"code":"return 1 --%02000d"}' 0)
# Every operation that takes a body answers 413 when it is too large.
for path in /v1/pools /v1/pools/p/wait /v1/pools/p/retry /v1/pools/p/tasks /v1/jobs /v1/jobs/await /v1/run; do
  json POST "$path" "$big"
done
json POST /v1/run '{"code":"return 1"}'     # still fine

# Turns every kept exchange, in order, into one JSON line (the last header
# block wins, after any "100 Continue").
node -e '
const fs = require("fs");
const [dir, count] = process.argv.slice(1);
for (let i = 1; i <= Number(count); i++) {
  const [method, path, status] = fs.readFileSync(`${dir}/${i}.req`, "utf8").split("\n");
  const blocks = fs.readFileSync(`${dir}/${i}.head`, "latin1").split(/\r?\n\r?\n/).filter((b) => b.trim());
  const headers = {};
  for (const line of (blocks.pop() || "").split(/\r?\n/).slice(1)) {
    const c = line.indexOf(":");
    if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
  }
  const body = fs.readFileSync(`${dir}/${i}.body`, "utf8");
  console.log(JSON.stringify({ method, path, status: Number(status), headers, body }));
}' "$tmp/ex" "$n" >"$out"
echo "$n exchanges written to $out"
