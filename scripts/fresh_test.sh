#!/usr/bin/env bash
# The README's quick start on a machine that has nothing yet: a fresh
# debian:bookworm-slim container gets a clean clone of the commit checked
# out here (uncommitted and ignored files stay behind), then runs the
# README's two commands as they are written:
#   1. scripts/run.sh in the background, until /healthz answers, then a
#      snippet through POST /v1/run, then a stop with SIGTERM;
#   2. CI=true scripts/test.sh, whose exit status decides the result.
# It builds nothing on this machine. Prints a line per step and a final
# PASS or FAIL with the time each step took; exits 0 only on PASS, 1 on a
# failure, 2 when no container engine can be set up.
#
#   scripts/fresh_test.sh
#
# Settings by environment:
#   GR_CONTAINER_ENGINE_TOOL  the script that sets up the engine and prints
#                             its name last (default: shared/tools/
#                             container-engine.sh beside this checkout or
#                             beside the folder holding it)
#   GR_FRESH_PORT             where scripts/run.sh serves (8080, as in the
#                             README; the container shares this machine's
#                             network, so when 8080 is taken and this is not
#                             set, a free port is used, given to the server
#                             as GOROUTINED_LISTEN)
#   GR_FRESH_SERVE_TIMEOUT    seconds for run.sh to install, build and answer
#                             (900)
#   GR_FRESH_TEST_TIMEOUT     seconds for scripts/test.sh (10800)
#   GR_TEST_VARIANTS, GR_FUZZ_SECONDS  passed on to scripts/test.sh when set
#                             (default: the whole suite)
# Takes 20-40 minutes on two cores: the packages, then four builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
image=docker.io/library/debian:bookworm-slim
serve_timeout=${GR_FRESH_SERVE_TIMEOUT:-900}
test_timeout=${GR_FRESH_TEST_TIMEOUT:-10800}
case "$serve_timeout$test_timeout" in
  *[!0-9]*) echo "fresh_test: the timeouts must be whole seconds" >&2; exit 2 ;;
esac

started=$(date +%s)
say() { printf 'fresh_test [%4ds] %s\n' $(($(date +%s) - started)) "$*"; }

# ---------------------------------------------------------------- engine
tool=${GR_CONTAINER_ENGINE_TOOL:-}
if [ -z "$tool" ]; then
  for candidate in "$root/../shared/tools/container-engine.sh" \
    "$root/../../shared/tools/container-engine.sh"; do
    if [ -x "$candidate" ]; then
      tool=$candidate
      break
    fi
  done
fi
if [ -n "${GR_CONTAINER_ENGINE_TOOL:-}" ] && [ ! -x "$tool" ]; then
  echo "fresh_test: GR_CONTAINER_ENGINE_TOOL=$tool is not an executable file" >&2
  exit 2
fi
if [ -z "$tool" ]; then
  echo "fresh_test: no container engine tool found (looked for" \
    "shared/tools/container-engine.sh beside $root and beside its folder);" \
    "set GR_CONTAINER_ENGINE_TOOL to a script that prints the engine's name" \
    "on its last line" >&2
  exit 2
fi
say "setting up the container engine ($tool)"
engine=$("$tool" | tail -n 1) || true
if [ -z "$engine" ] || ! command -v "$engine" >/dev/null; then
  echo "fresh_test: $tool gave no usable engine (got '$engine')" >&2
  exit 2
fi

# ---------------------------------------------------------------- port
# True when something accepts connections on 127.0.0.1:$1.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

port=${GR_FRESH_PORT:-8080}
case "$port" in
  '' | *[!0-9]*) echo "fresh_test: GR_FRESH_PORT must be a port number" >&2; exit 2 ;;
esac
if port_taken "$port"; then
  if [ -n "${GR_FRESH_PORT:-}" ]; then
    echo "fresh_test: port $port on 127.0.0.1 is in use; pick another with GR_FRESH_PORT" >&2
    exit 1
  fi
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 30000))
    port_taken "$port" || break
  done
  port_taken "$port" && { echo "fresh_test: found no free port" >&2; exit 1; }
  say "port 8080 is in use here: the server listens on $port instead (GOROUTINED_LISTEN)"
fi
base=http://127.0.0.1:$port

# ---------------------------------------------------------------- clone
commit=$(git -C "$root" rev-parse HEAD)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
  say "note: uncommitted changes here are not part of the run"
fi
work=$(mktemp -d /tmp/fresh_test.XXXXXX)
name=goroutined-fresh-$$
cleanup() {
  "$engine" rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

git clone -q --no-checkout "$root" "$work/goroutined"
git -C "$work/goroutined" checkout -q --detach "$commit"
say "clean clone of $(git -C "$root" log -1 --format='%h %s' "$commit")"

# ---------------------------------------------------------------- container
run_args=(run -d --name "$name" --init --pull=never --network=host)
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  # npm reaches its registry through this machine's CA (see the engine tool).
  run_args+=(-v "$NODE_EXTRA_CA_CERTS":/etc/ssl/host-ca.crt:ro
    -e NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt)
fi
"$engine" "${run_args[@]}" "$image" sleep infinity >/dev/null
# Owned by root in there, as a clone made by root would be.
tar -C "$work" --owner=0 --group=0 -cf - goroutined |
  "$engine" exec -i "$name" tar -C /root -xf -
say "container $name ($image) holds the clone in /root/goroutined"

# in_box CMD...: runs CMD in the clone's folder inside the container.
in_box() { "$engine" exec -w /root/goroutined "$name" "$@"; }

fail() {
  say "FAIL: $*"
  echo "fresh_test: FAIL after $(($(date +%s) - started)) s"
  exit 1
}

# ---------------------------------------------------------------- run.sh
serve_env=()
if [ "$port" != 8080 ]; then
  serve_env=(-e "GOROUTINED_LISTEN=127.0.0.1:$port")
fi
# run.sh ends in `exec goroutined serve`, so its pid is the server's.
"$engine" exec -d -w /root/goroutined "${serve_env[@]}" "$name" bash -c \
  'scripts/run.sh >/tmp/run.log 2>&1 & echo $! >/tmp/run.pid; wait $!; echo $? >/tmp/run.status' \
  >/dev/null
say "scripts/run.sh started; waiting up to ${serve_timeout}s for $base/healthz"
serve_started=$(date +%s)
health=""
while [ $(($(date +%s) - serve_started)) -lt "$serve_timeout" ]; do
  if in_box test -f /tmp/run.status; then
    in_box tail -n 40 /tmp/run.log || true
    fail "scripts/run.sh exited with status $(in_box cat /tmp/run.status) before serving"
  fi
  # curl comes with run.sh's packages; until then this just fails.
  health=$(in_box curl -fsS --max-time 5 "$base/healthz" 2>/dev/null) && break
  health=""
  sleep 5
done
serve_took=$(($(date +%s) - serve_started))
if [ -z "$health" ]; then
  in_box tail -n 40 /tmp/run.log || true
  fail "no answer from $base/healthz after ${serve_timeout}s"
fi
[ "$health" = '{"status":"ok"}' ] || fail "/healthz answered $health"
say "serving after ${serve_took}s: /healthz answered $health"

answer=$(in_box curl -sS --max-time 30 -X POST "$base/v1/run" \
  -H 'Content-Type: application/json' -d '{"code":"return 1+1"}') ||
  fail "POST /v1/run did not answer"
case "$answer" in
  *'"values":[2]'*) say "POST /v1/run {\"code\":\"return 1+1\"} answered $answer" ;;
  *) fail "POST /v1/run answered $answer, without \"values\":[2]" ;;
esac

# shellcheck disable=SC2016 # expanded in the container
in_box bash -c 'kill -TERM "$(cat /tmp/run.pid)"'
stopped=""
for _ in $(seq 1 60); do # up to 30 s
  stopped=$(in_box cat /tmp/run.status 2>/dev/null) && break
  stopped=""
  sleep 0.5
done
[ -n "$stopped" ] || fail "the server did not stop within 30 s of SIGTERM"
[ "$stopped" = 0 ] || fail "the server exited with status $stopped on SIGTERM"
say "server stopped on SIGTERM (exit status 0)"

# ---------------------------------------------------------------- test.sh
test_env=(-e CI=true)
for var in GR_TEST_VARIANTS GR_FUZZ_SECONDS; do
  if [ -n "${!var+set}" ]; then
    test_env+=(-e "$var=${!var}")
  fi
done
say "CI=true scripts/test.sh (up to ${test_timeout}s)${GR_TEST_VARIANTS+, GR_TEST_VARIANTS=$GR_TEST_VARIANTS}${GR_FUZZ_SECONDS+, GR_FUZZ_SECONDS=$GR_FUZZ_SECONDS}"
test_started=$(date +%s)
status=0
timeout "$test_timeout" "$engine" exec -w /root/goroutined "${test_env[@]}" "$name" \
  scripts/test.sh || status=$?
test_took=$(($(date +%s) - test_started))
[ "$status" = 124 ] && fail "scripts/test.sh ran past ${test_timeout}s"
[ "$status" = 0 ] || fail "scripts/test.sh exited with status $status after ${test_took}s"
say "scripts/test.sh passed in ${test_took}s"
echo "fresh_test: PASS ($(git -C "$root" rev-parse --short "$commit"): serving after" \
  "${serve_took}s, test.sh ${test_took}s, $(($(date +%s) - started))s in all)"
