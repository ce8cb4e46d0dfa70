#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing goroutined need,
# only those missing. Idempotent and quiet; safe to run any number of times.
#   scripts/setup.sh          everything (what scripts/test.sh needs)
#   scripts/setup.sh build    only what building and serving need
#                             (scripts/run.sh): no clang, promtool, Chromium
# Every program the tests, scripts and benchmarks call comes from a package
# listed here, except wrk and nginx, which bench/http_bench.sh installs
# itself (nginx's service must not start on port 80 of a developer's box).
set -euo pipefail

packages=(
  gcc make cmake pkg-config
  liblua5.4-dev lua5.4 luarocks
  libjemalloc-dev
  libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
  libsqlite3-dev   # the durable record store (store/)
  libhiredis-dev   # the Redis record store (store/redis*.c)
  check libsubunit-dev
  curl   # the README's session talks to the server with it
  python3 jq   # docs/COOKBOOK.md's recipes; tests/CMakeLists.txt needs python3 for their test
  libssl-dev   # libcrypto: SHA-256 of requests with an Idempotency-Key (api/)
)
if [ "${1:-all}" != build ]; then
  packages+=(
    clang libclang-rt-14-dev llvm   # libFuzzer and its symbolizer (scripts/fuzz.sh)
    prometheus   # promtool checks the /metrics output (tests/test_metrics.c)
    chromium     # the dashboard's browser test (tests/browser)
    redis-server # the Redis store's tests start their own (tests/redis_server.c)
    git clang-format   # the format check of scripts/test.sh (git ls-files)
    procps iproute2    # ps and ss (bench/http_bench.sh)
  )
fi

# The contract checks (tests/openapi) run on Node.js; any Node >= 18 does,
# so Debian's is installed only when there is none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
