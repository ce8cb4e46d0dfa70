#!/usr/bin/env bash
# HTTP benchmark of goroutined against two yardsticks, on loopback only.
#
# What it measures, with wrk (THREADS threads, CONNECTIONS connections,
# DURATION per run, RUNS runs; it reports the median requests/s and the
# median p99 latency from `wrk --latency`):
#   A  POST /v1/run {"code":"return 1+1"} on `goroutined serve`, against
#      nginx with Debian's Lua module doing load() + pcall() of the POSTed
#      code and answering a hand-built JSON body (the cheapest "run a Lua
#      snippet over HTTP" there is).
#   B  GET /v1/pools/bench on `goroutined serve` (a dashboard polling pool
#      statistics), against bench/mhd_fixed, a minimal libmicrohttpd server
#      that answers the same JSON as a fixed buffer (the ceiling of the HTTP
#      library goroutined is built on).
#   F  POST /v1/run {"function":"bench_add"}, a stored function whose code
#      is `return 1+1` (compiled once, when stored), against nginx running
#      the same code from a file (content_by_lua_file, compiled once and
#      cached by the Lua module), and against A (the same code shipped in
#      "code" and compiled for each request).
#   C  F's POST answered by bench/mhd_fixed with a fixed buffer, its
#      connection memory sized as goroutined's: the ceiling of any server on
#      libmicrohttpd for A and F (no routing, JSON or Lua at all), printed
#      as a ratio to nginx-lua's F.
# A and B again on a second goroutined at the default log level (a line per
# request, to a file), to show what the log costs. Beside each figure: the
# server's CPU time per request (user + system, from /proc, its threads or
# nginx's workers included), which the machine's drift moves less than the
# rates, and the machine's floor (bench_runtime --floor), so that figures
# from other machines compare.
# The runs of the servers alternate (goroutined, yardstick, goroutined, ...)
# so that drifts of the machine hit both alike. Figures vary by 15-25% from
# one run to the next here: compare only the figures of one run.
#
# How to run it, from anywhere, as root (it installs the Debian packages it
# needs when missing: wrk, nginx, libnginx-mod-http-lua):
#   bench/http_bench.sh
#   DURATION=3s RUNS=1 bench/http_bench.sh          # a quick check
# Settings by environment: DURATION (10s), RUNS (3), CONNECTIONS (50),
# THREADS (2). The table goes to stdout, progress to stderr. It builds
# goroutined and mhd_fixed with scripts/build.sh normal, works in a temporary
# folder under /tmp that it removes at the end, and stops every server it
# started, whatever happens. It is a measurement, not a test: it fails only
# when something does not work, never because a figure is low.
set -euo pipefail

DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}

root=$(cd "$(dirname "$0")/.." && pwd)
work=""
pids=()         # every server this script started
nginx_pid=""
wrk_pid=""      # the wrk run in progress, if any

say() { echo "http_bench: $*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

# Stops one process we started: SIGTERM, up to 15 s, then SIGKILL.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "pid $pid did not stop on SIGTERM: killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$? pid workers=""
  trap - EXIT INT TERM
  # nginx's workers are not our children: note them before stopping the
  # master, and kill any that outlive it.
  if [ -n "$nginx_pid" ]; then
    workers=$(ps -o pid= --ppid "$nginx_pid" 2>/dev/null || true)
  fi
  [ -n "$wrk_pid" ] && stop_pid "$wrk_pid"
  for pid in "${pids[@]}"; do
    stop_pid "$pid"
  done
  for pid in $workers; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  [ -n "$work" ] && rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- settings
case "$RUNS$CONNECTIONS$THREADS" in *[!0-9]*) die "RUNS, CONNECTIONS and THREADS must be whole numbers" ;; esac
[ "$RUNS" -ge 1 ] || die "RUNS must be at least 1"

# wrk's duration (e.g. 10s, 2m, 30) in whole seconds, for the time limits.
duration_seconds() {
  local d=$1
  case "$d" in
    *[0-9]s) echo "${d%s}" ;;
    *[0-9]m) echo $((${d%m} * 60)) ;;
    *[0-9]h) echo $((${d%h} * 3600)) ;;
    *[0-9]) echo "$d" ;;
    *) return 1 ;;
  esac
}
dur_s=$(duration_seconds "$DURATION") || die "DURATION must look like 10s, 2m or 30"
case "$dur_s" in *[!0-9]*) die "DURATION must be whole seconds, minutes or hours" ;; esac

# ---------------------------------------------------------------- packages
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_missing() {
  local missing=() pkg made_policy=""
  for pkg in "$@"; do
    installed "$pkg" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
  say "installing ${missing[*]}"
  # Installing nginx would start the system service on port 80; Debian's
  # policy-rc.d hook (exit 101) forbids that. Add one only for the install
  # when the machine has none.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  {
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q \
        --no-install-recommends "${missing[@]}"
  } >"${work}/apt.log" 2>&1 || rc=$?
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  if [ "$rc" -ne 0 ]; then
    tail -20 "${work}/apt.log" >&2
    die "apt-get install ${missing[*]} failed"
  fi
}

work=$(mktemp -d /tmp/http_bench.XXXXXX)
chmod 755 "$work" # nginx's workers run as nobody

install_missing wrk curl iproute2 nginx libnginx-mod-http-lua
"$root/scripts/setup.sh" >&2 # the build's own packages

ndk_so=$(dpkg -L libnginx-mod-http-ndk | grep '/ndk_http_module\.so$' | head -1)
lua_so=$(dpkg -L libnginx-mod-http-lua | grep '/ngx_http_lua_module\.so$' | head -1)
[ -f "$ndk_so" ] || die "ndk_http_module.so not found (libnginx-mod-http-ndk)"
[ -f "$lua_so" ] || die "ngx_http_lua_module.so not found (libnginx-mod-http-lua)"

# ---------------------------------------------------------------- build
say "building (scripts/build.sh normal)"
(cd "$root" && timeout 900 scripts/build.sh normal) || die "scripts/build.sh normal failed"
goroutined="$root/build/normal/goroutined"
mhd_fixed="$root/build/normal/bench/mhd_fixed"
[ -x "$goroutined" ] || die "$goroutined was not built"
[ -x "$mhd_fixed" ] || die "$mhd_fixed was not built (GR_BUILD_BENCH off?)"

# ---------------------------------------------------------------- helpers
# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  local i p
  for ((i = 0; i < 100; i++)); do
    p=$((20000 + RANDOM % 40000))
    if [ -z "$(ss -Hltn "sport = :$p")" ]; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# Waits up to 10 s until PID listens on 127.0.0.1:PORT.
wait_listening() {
  local pid=$1 port=$2 name=$3 i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || die "$name exited at start (see above)"
    [ -n "$(ss -Hltn "src 127.0.0.1:$port")" ] && return 0
    sleep 0.1
  done
  die "$name does not listen on 127.0.0.1:$port after 10 s"
}

# check_answer NAME EXPECTED_SUBSTRING CURL_ARGS...: one request, which must
# answer 200 with a body containing EXPECTED_SUBSTRING.
check_answer() {
  local name=$1 want=$2 out code body
  shift 2
  out=$(curl -s -m 10 -w '\n%{http_code}' "$@") || die "$name: curl $* failed"
  code=${out##*$'\n'}
  body=${out%$'\n'*}
  if [ "$code" != 200 ] || [[ "$body" != *"$want"* ]]; then
    die "$name: expected 200 with $want, got $code: $body"
  fi
}

# Converts wrk's latency (e.g. 812.00us, 1.96ms, 1.02s) to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0;
    else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000;
    printf "%.3f", n }'
}

# Median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) printf "%.3f", v[(NR + 1) / 2];
    else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench KEY URL [SCRIPT]: one wrk run; appends its req/s and p99 (ms) to
# rps_KEY and p99_KEY.
declare -A rps p99 errs cpu server_pids
clk_tck=$(getconf CLK_TCK)
# The CPU time (user + system, in clock ticks) the processes given have
# used so far, threads included.
cpu_ticks() {
  local pid t=0 v
  for pid in "$@"; do
    v=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    t=$((t + v))
  done
  echo "$t"
}

bench() {
  local key=$1 url=$2 script=${3:-} out r l bad n c0 c1
  local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
  [ -n "$script" ] && args+=(-s "$script")
  # shellcheck disable=SC2086 # a list of pids
  c0=$(cpu_ticks ${server_pids[$key]})
  # In the background, so that a signal stops the script at once (bash runs
  # traps during `wait`, not during a command in the foreground).
  timeout $((dur_s + 60)) wrk "${args[@]}" "$url" >"$work/wrk.out" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || die "wrk on $url failed: $(cat "$work/wrk.out")"
  wrk_pid=""
  # shellcheck disable=SC2086
  c1=$(cpu_ticks ${server_pids[$key]})
  out=$(cat "$work/wrk.out")
  # "123456 requests in 10.00s": the server's CPU per request, in us.
  n=$(awk '/ requests in / { print $1 }' <<<"$out")
  { [ -n "$n" ] && [ "$n" -gt 0 ]; } || die "cannot read wrk's request count for $url: $out"
  cpu[$key]="${cpu[$key]:-} $(awk -v t=$((c1 - c0)) -v hz="$clk_tck" -v n="$n" \
    'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
  r=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
  l=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  { [ -n "$r" ] && [ -n "$l" ]; } || die "cannot read wrk's output for $url: $out"
  l=$(to_ms "$l")
  # Errors and non-2xx answers mean the figure is not the one wanted.
  bad=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
             /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
             END { print n + 0 }' <<<"$out")
  rps[$key]="${rps[$key]:-} $r"
  p99[$key]="${p99[$key]:-} $l"
  errs[$key]=$((${errs[$key]:-0} + bad))
  local note=""
  [ "$bad" -gt 0 ] && note=", $bad errors/non-2xx"
  say "  $key: $(printf '%.0f' "$r") req/s, p99 $l ms, server CPU $(awk '{ print $NF }' <<<"${cpu[$key]}") us/req$note"
}

# ---------------------------------------------------------------- servers
# goroutined, on a port it picks itself.
"$goroutined" serve --listen 127.0.0.1:0 --log-level warn --store memory: 2>"$work/goroutined.err" &
gd_pid=$!
pids+=("$gd_pid")
gd_port=""
for ((i = 0; i < 100; i++)); do
  kill -0 "$gd_pid" 2>/dev/null || { cat "$work/goroutined.err" >&2; die "goroutined exited at start"; }
  # It logs "listening on http://127.0.0.1:PORT" at info level; at warn the
  # port is read from the socket it listens on.
  gd_port=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/goroutined.err" |
    head -1 | sed 's/.*://' || true)
  [ -z "$gd_port" ] && gd_port=$(ss -Hltnp | grep "pid=$gd_pid," |
    awk '{ print $4 }' | grep '^127\.0\.0\.1:' | head -1 | sed 's/.*://' || true)
  [ -n "$gd_port" ] && break
  sleep 0.1
done
[ -n "$gd_port" ] || die "cannot find goroutined's port after 10 s"
gd="http://127.0.0.1:$gd_port"

# The same at the default log level (a line per request, to a file), to
# see what the log costs.
"$goroutined" serve --listen 127.0.0.1:0 --store memory: --log-file "$work/goroutined_info.log" \
  2>"$work/goroutined_info.err" &
gdl_pid=$!
pids+=("$gdl_pid")
gdl_port=""
for ((i = 0; i < 100; i++)); do
  kill -0 "$gdl_pid" 2>/dev/null || { cat "$work/goroutined_info.err" >&2; die "goroutined exited at start"; }
  gdl_port=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$work/goroutined_info.log" 2>/dev/null |
    head -1 | sed 's/.*://' || true)
  [ -n "$gdl_port" ] && break
  sleep 0.1
done
[ -n "$gdl_port" ] || die "cannot find the second goroutined's port after 10 s"
gdl="http://127.0.0.1:$gdl_port"

# nginx with the Lua module, in its own prefix.
ng_port=$(free_port)
mkdir -p "$work/nginx/logs"
cat >"$work/nginx/nginx.conf" <<EOF
# Written by bench/http_bench.sh; removed with its temporary folder.
load_module $ndk_so;
load_module $lua_so;
daemon off;
master_process on;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ng_port;
    location = /fn {
      # The same code as a file: compiled once, then cached.
      content_by_lua_file $work/nginx/fn.lua;
    }
    location = /run {
      client_max_body_size 64k;
      client_body_buffer_size 64k;
      content_by_lua_block {
        -- The body is the Lua code itself; run it and answer its values.
        ngx.req.read_body()
        local code = ngx.req.get_body_data() or ""
        local function pack(...) return select("#", ...), { ... } end
        local n, res
        local fn, err = load(code, "=snippet", "t")
        if fn then n, res = pack(pcall(fn)) else n, res = 2, { false, err } end
        local function str(s)
          return '"' .. tostring(s):gsub('[%c"\\\\]', " ") .. '"'
        end
        local body
        if res[1] then
          local parts = {}
          for i = 2, n do
            local v = res[i]
            local t = type(v)
            if t == "number" or t == "boolean" then parts[#parts + 1] = tostring(v)
            elseif t == "string" then parts[#parts + 1] = str(v)
            else parts[#parts + 1] = "null" end
          end
          body = '{"success":true,"values":[' .. table.concat(parts, ",") .. ']}'
        else
          body = '{"success":false,"error":' .. str(res[2]) .. '}'
        end
        ngx.header["Content-Type"] = "application/json"
        ngx.header["Content-Length"] = #body
        ngx.print(body)
      }
    }
  }
}
EOF
cat >"$work/nginx/fn.lua" <<'EOF'
-- Written by bench/http_bench.sh: `return 1+1`, answered as /run answers.
local ok, v = pcall(function() return 1 + 1 end)
local body = ok and ('{"success":true,"values":[' .. tostring(v) .. ']}')
  or '{"success":false}'
ngx.header["Content-Type"] = "application/json"
ngx.header["Content-Length"] = #body
ngx.print(body)
EOF
nginx_args=(-p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log")
nginx -t -q "${nginx_args[@]}" || die "nginx rejects its configuration"
nginx "${nginx_args[@]}" &
nginx_pid=$!
pids+=("$nginx_pid")

# The minimal libmicrohttpd server.
mhd_port=$(free_port)
"$mhd_fixed" "$mhd_port" &
mhd_pid=$!
pids+=("$mhd_pid")
# The same, as the ceiling of the POSTs (C): 22,528 bytes of memory per
# connection, what goroutined gives one with the default --max-head (16K)
# and --max-url (8K) (http_connection_memory in server/http.c).
mhdc_port=$(free_port)
"$mhd_fixed" "$mhdc_port" 22528 &
mhdc_pid=$!
pids+=("$mhdc_pid")

wait_listening "$gd_pid" "$gd_port" goroutined
wait_listening "$gdl_pid" "$gdl_port" goroutined
wait_listening "$nginx_pid" "$ng_port" nginx
wait_listening "$mhd_pid" "$mhd_port" mhd_fixed
wait_listening "$mhdc_pid" "$mhdc_port" mhd_fixed
ng="http://127.0.0.1:$ng_port"
mhd="http://127.0.0.1:$mhd_port"
mhdc="http://127.0.0.1:$mhdc_port"

# ---------------------------------------------------------------- checks
cat >"$work/post_gd.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"code":"return 1+1"}'
wrk.headers["Content-Type"] = "application/json"
EOF
cat >"$work/post_ng.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "return 1+1"
wrk.headers["Content-Type"] = "text/plain"
EOF

cat >"$work/post_fn.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"function":"bench_add"}'
wrk.headers["Content-Type"] = "application/json"
EOF
code=$(curl -s -m 10 -o "$work/fn.json" -w '%{http_code}' -X PUT "$gd/v1/functions/bench_add" \
  -H 'Content-Type: application/json' -d '{"code":"return 1+1"}') || true
[ "$code" = 201 ] || die "storing function bench_add: expected 201, got $code: $(cat "$work/fn.json")"
check_answer "goroutined POST /v1/run function" '"success":true,"values":[2]' \
  -X POST "$gd/v1/run" -H 'Content-Type: application/json' -d '{"function":"bench_add"}'
check_answer "nginx-lua POST /fn" '{"success":true,"values":[2]}' \
  -X POST "$ng/fn" -H 'Content-Type: application/json' -d '{"function":"bench_add"}'
check_answer "goroutined POST /v1/run" '"success":true,"values":[2]' \
  -X POST "$gd/v1/run" -H 'Content-Type: application/json' -d '{"code":"return 1+1"}'
check_answer "nginx-lua POST /run" '{"success":true,"values":[2]}' \
  -X POST "$ng/run" -H 'Content-Type: text/plain' --data-binary 'return 1+1'
code=$(curl -s -m 10 -o "$work/pool.json" -w '%{http_code}' -X POST "$gd/v1/pools" \
  -H 'Content-Type: application/json' -d '{"name":"bench","workers":2}') || true
[ "$code" = 201 ] || die "creating pool bench: expected 201, got $code: $(cat "$work/pool.json")"
check_answer "goroutined GET /v1/pools/bench" '"name":"bench"' "$gd/v1/pools/bench"
check_answer "mhd_fixed GET" '"name":"bench"' "$mhd/v1/pools/bench"
check_answer "mhd_fixed POST" '"name":"bench"' \
  -X POST "$mhdc/v1/run" -H 'Content-Type: application/json' -d '{"function":"bench_add"}'
code=$(curl -s -m 10 -o "$work/pool.json" -w '%{http_code}' -X POST "$gdl/v1/pools" \
  -H 'Content-Type: application/json' -d '{"name":"bench","workers":2}') || true
[ "$code" = 201 ] || die "creating pool bench (info log): expected 201, got $code: $(cat "$work/pool.json")"

# Whose CPU each scenario counts: nginx's master and its workers.
nginx_all="$nginx_pid $(ps -o pid= --ppid "$nginx_pid" | tr '\n' ' ')"
server_pids=([A_gd]="$gd_pid" [A_ng]="$nginx_all" [B_gd]="$gd_pid" [B_mhd]="$mhd_pid"
  [A_gdl]="$gdl_pid" [B_gdl]="$gdl_pid" [F_gd]="$gd_pid" [F_ng]="$nginx_all"
  [C_mhd]="$mhdc_pid")

# The machine's floor, measured now: figures of other machines compare as
# multiples of it.
floor=$("$root/build/normal/bench/bench_runtime" --floor) || die "bench_runtime --floor failed"

# ---------------------------------------------------------------- runs
# Other work on the machine skews every figure: note the load before the runs.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $RUNS run(s) each"
for ((run = 1; run <= RUNS; run++)); do
  say "run $run/$RUNS"
  bench A_gd "$gd/v1/run" "$work/post_gd.lua"
  bench A_ng "$ng/run" "$work/post_ng.lua"
  bench A_gdl "$gdl/v1/run" "$work/post_gd.lua"
  bench B_gd "$gd/v1/pools/bench"
  bench B_mhd "$mhd/v1/pools/bench"
  bench B_gdl "$gdl/v1/pools/bench"
  bench F_gd "$gd/v1/run" "$work/post_fn.lua"
  bench F_ng "$ng/fn" "$work/post_fn.lua"
  bench C_mhd "$mhdc/v1/run" "$work/post_fn.lua"
done

# Servers that died during the runs make the figures meaningless.
for pid in "$gd_pid" "$gdl_pid" "$nginx_pid" "$mhd_pid" "$mhdc_pid"; do
  kill -0 "$pid" 2>/dev/null || die "a server (pid $pid) died during the runs"
done

# ---------------------------------------------------------------- report
declare -A med_r med_l med_c
for key in A_gd A_ng A_gdl B_gd B_mhd B_gdl F_gd F_ng C_mhd; do
  # shellcheck disable=SC2086 # the lists are space-separated numbers
  med_r[$key]=$(median ${rps[$key]})
  # shellcheck disable=SC2086
  med_l[$key]=$(median ${p99[$key]})
  # shellcheck disable=SC2086
  med_c[$key]=$(median ${cpu[$key]})
done
row() {
  local note=""
  [ "${errs[$3]}" -gt 0 ] && note="  (${errs[$3]} errors/non-2xx)"
  printf '%-34s %-18s %10.0f %9.2f ms %12.1f us%s\n' "$1" "$2" "${med_r[$3]}" "${med_l[$3]}" \
    "${med_c[$3]}" "$note"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# verdict RATIO TARGET: met when RATIO >= TARGET.
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "met" : "NOT met") }'; }
ra=$(ratio "${med_r[A_gd]}" "${med_r[A_ng]}")
rb=$(ratio "${med_r[B_gd]}" "${med_r[B_mhd]}")
# CPU per request: nginx's over ours (>= 1: ours is no more than nginx's).
rca=$(ratio "${med_c[A_ng]}" "${med_c[A_gd]}")
# The default log level against warn: within 5% means a ratio >= 0.95.
rla=$(ratio "${med_r[A_gdl]}" "${med_r[A_gd]}")
rlb=$(ratio "${med_r[B_gdl]}" "${med_r[B_gd]}")
rf=$(ratio "${med_r[F_gd]}" "${med_r[F_ng]}")
rfa=$(ratio "${med_r[F_gd]}" "${med_r[A_gd]}")
rc=$(ratio "${med_r[C_mhd]}" "${med_r[F_ng]}")
rcc=$(ratio "${med_c[F_ng]}" "${med_c[C_mhd]}")

echo
echo "HTTP benchmark, 127.0.0.1, wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, median of $RUNS run(s)"
echo "floor of this machine: $floor"
printf '%-34s %-18s %10s %12s %15s\n' scenario server "req/s" "p99" "server CPU/req"
row "A POST /v1/run return 1+1" goroutined A_gd
row "A (POST /run, body return 1+1)" nginx-lua A_ng
row "A POST /v1/run, default log level" "goroutined (info)" A_gdl
row "B GET /v1/pools/bench" goroutined B_gd
row "B (fixed JSON body)" "minimal MHD" B_mhd
row "B GET, default log level" "goroutined (info)" B_gdl
row "F POST /v1/run stored function" goroutined F_gd
row "F (content_by_lua_file)" nginx-lua F_ng
row "C F's POST, fixed answer" "minimal MHD" C_mhd
echo "ratios: A goroutined/nginx-lua = $ra (target >= 1.1: $(verdict "$ra" 1.1));" \
  "A CPU per request, nginx-lua/goroutined = $rca (target >= 1.0: $(verdict "$rca" 1.0));" \
  "B goroutined/MHD = $rb (target >= 1.0: $(verdict "$rb" 1.0))"
echo "stored functions: F goroutined/nginx-lua = $rf (target >= 1.0: $(verdict "$rf" 1.0));" \
  "F against A (a stored function against the same code in \"code\") = $rfa"
echo "the ceiling on libmicrohttpd: C minimal MHD/nginx-lua F = $rc, CPU per request" \
  "nginx-lua F/C = $rcc (no server on libmicrohttpd does F faster than C)"
echo "the default log level against warn: A $rla, B $rlb (target >= 0.95:" \
  "A $(verdict "$rla" 0.95), B $(verdict "$rlb" 0.95))"
# shellcheck disable=SC2086 # the lists are space-separated numbers
runs_of() { printf '%.0f ' ${rps[$1]} | sed 's/ $//'; }
echo "each run, req/s: A goroutined $(runs_of A_gd) | A nginx-lua $(runs_of A_ng)" \
  "| A info $(runs_of A_gdl) | B goroutined $(runs_of B_gd) | B MHD $(runs_of B_mhd)" \
  "| B info $(runs_of B_gdl) | F goroutined $(runs_of F_gd) | F nginx-lua $(runs_of F_ng)" \
  "| C MHD $(runs_of C_mhd)"
echo "versions: $("$goroutined" version 2>&1);" \
  "$(nginx -v 2>&1 | sed 's/^nginx version: //') + lua module $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua);" \
  "$(wrk -v 2>&1 | head -1 | awk '{ print $1, $2, $3 }');" \
  "libmicrohttpd $(pkg-config --modversion libmicrohttpd 2>/dev/null || echo '?');" \
  "$(nproc) CPUs"
echo "load average (1/5/15 min) just before the runs: $load_before" \
  "(above ~0.5, other work was running and the figures are lower)"
