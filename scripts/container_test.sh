#!/usr/bin/env bash
# Builds the container image from docker/Dockerfile and runs it: the health
# check, a job through the container with the token, 401 without it, the
# dashboard and /metrics, the non-root user, and a graceful stop with exit
# status 0.
#
#   scripts/container_test.sh
#
# The engine: $CONTAINER_ENGINE, else ../shared/tools/container-engine.sh
# (sets up podman where no registry is reachable), else podman or docker.
# Loopback only; takes a few minutes the first time (the image builds from
# scratch), well under a minute afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  if [ -x ../shared/tools/container-engine.sh ]; then
    engine=$(../shared/tools/container-engine.sh | tail -n 1)
  elif command -v podman >/dev/null; then
    engine=podman
  elif command -v docker >/dev/null; then
    engine=docker
  else
    echo "container_test: no container engine (podman or docker) found" >&2
    exit 1
  fi
fi

tag=goroutined:test
name=goroutined-test-$$
token=container-test-$RANDOM$RANDOM
port=$((20000 + RANDOM % 30000))
for _ in 1 2 3 4 5; do # a port nothing listens on
  curl -s -o /dev/null "http://127.0.0.1:$port/" || break
  port=$((20000 + RANDOM % 30000))
done
base=http://127.0.0.1:$port

cleanup() {
  "$engine" rm -f -v "$name" >/dev/null 2>&1 || true
}
trap cleanup EXIT

fail() {
  echo "container_test: FAILED: $*" >&2
  "$engine" logs "$name" 2>&1 | tail -n 30 >&2 || true
  exit 1
}

echo "== build ($engine)"
build_args=(build -f docker/Dockerfile -t "$tag")
if [ "$engine" = podman ]; then
  build_args+=(--pull=never --network=host --format docker)
fi
"$engine" "${build_args[@]}" . >/tmp/goroutined-image-build.log 2>&1 \
  || { tail -n 40 /tmp/goroutined-image-build.log >&2; fail "the image did not build"; }

echo "== refuses to listen off loopback without a token"
if "$engine" run --rm --network=host -e GOROUTINED_LISTEN=0.0.0.0:$port "$tag" \
  >/tmp/goroutined-notoken.log 2>&1; then
  fail "the server started on 0.0.0.0 without a token"
fi
grep -q "token" /tmp/goroutined-notoken.log \
  || fail "no message about the missing token: $(cat /tmp/goroutined-notoken.log)"

echo "== run"
"$engine" run -d --init --network=host --name "$name" \
  -e GOROUTINED_TOKEN="$token" -e GOROUTINED_LISTEN=0.0.0.0:$port "$tag" >/dev/null
for _ in $(seq 1 100); do # up to 20 s
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
health=$(curl -fsS "$base/healthz") || fail "/healthz does not answer"
[ "$health" = '{"status":"ok"}' ] || fail "/healthz answered $health"

uid=$("$engine" exec "$name" id -u)
[ "$uid" != 0 ] || fail "the server runs as root"

status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$base/v1/run" \
  -H 'Content-Type: application/json' -d '{"code":"return 1"}')
[ "$status" = 401 ] || fail "no token: expected 401, got $status"

run=$(curl -fsS -X POST "$base/v1/run" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' \
  -d '{"code":"local a, b = ... return a * b","args":[6,7]}') \
  || fail "POST /v1/run with the token failed"
echo "$run" | grep -q '"values":\[42\]' || fail "/v1/run answered $run"

job=$(curl -fsS -X POST "$base/v1/jobs" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' \
  -d '{"code":"local hs = {} for i = 1, 10 do hs[i] = goroutine.async(function() goroutine.sleep(50) return i end) end local s = 0 for _, r in ipairs(goroutine.await_all(hs)) do s = s + r.values[1] end return s"}') \
  || fail "POST /v1/jobs failed"
id=$(echo "$job" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
[ -n "$id" ] || fail "no job id in $job"
result=$(curl -fsS "$base/v1/jobs/$id?wait=10" -H "Authorization: Bearer $token") \
  || fail "GET /v1/jobs/$id failed"
echo "$result" | grep -q '"values":\[55\]' || fail "the job answered $result"

page=$(curl -fsS "$base/") || fail "GET / (the dashboard) failed"
echo "$page" | grep -q '<title>goroutined' || fail "GET / is not the dashboard"
metrics=$(curl -fsS "$base/metrics" -H "Authorization: Bearer $token") \
  || fail "GET /metrics with the token failed"
echo "$metrics" | grep -q '^goroutined_goroutines_spawned_total ' \
  || fail "/metrics lacks goroutined_goroutines_spawned_total"

if [ "$engine" = podman ]; then
  "$engine" healthcheck run "$name" >/dev/null || fail "the image's HEALTHCHECK fails"
fi

echo "== graceful stop"
"$engine" stop -t 20 "$name" >/dev/null
code=$("$engine" inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "the server exited with $code on SIGTERM"

echo "== restart: the store in the volume keeps the records"
"$engine" start "$name" >/dev/null
for _ in $(seq 1 100); do # up to 20 s
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
again=$(curl -fsS "$base/v1/jobs/$id" -H "Authorization: Bearer $token") \
  || fail "after a restart, GET /v1/jobs/$id failed"
echo "$again" | grep -q '"values":\[55\]' || fail "after a restart the job answered $again"
"$engine" stop -t 20 "$name" >/dev/null

size=$("$engine" image inspect -f '{{.Size}}' "$tag")
echo "container_test: ok (image $((size / 1024 / 1024)) MiB, user $uid)"
