#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan+UBSan) in build/fuzz
# and runs each for SECONDS (default 15), starting from its committed seed
# corpus fuzz/corpus/TARGET; what a run finds goes to build/fuzz/corpus.
# Prints each target's executions per second and coverage; exits non-zero
# if any target crashed, leaked, hung or ran out of memory (the input is
# then in build/fuzz/artifacts/TARGET/, the log in build/fuzz/logs/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#   FUZZ_TARGETS="api_body router"  only these targets
#   FUZZ_JOBS=N                     N processes per target (libFuzzer -fork)
#   FUZZ_ARGS="-max_len=8192"       more libFuzzer flags
#   FUZZ_BUILD=DIR                  another build directory than build/fuzz
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-15}
targets=${FUZZ_TARGETS:-api_body json_values transfer router}
jobs=${FUZZ_JOBS:-1}
build=${FUZZ_BUILD:-build/fuzz}
cc=$(command -v clang-14 || command -v clang || true)
if [ -z "$cc" ]; then
  echo "fuzz: clang is missing (scripts/setup.sh installs it)" >&2
  exit 1
fi

echo "== fuzz: build ($build)"
CC=$cc cmake -S . -B "$build" -DGR_FUZZ=ON -DGR_SANITIZE=address \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGR_WERROR=OFF -DGR_BUILD_TESTS=OFF \
  -DGR_BUILD_BENCH=OFF -Wno-dev >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_all -- --no-print-directory \
  >"$build/build.log" 2>&1 || { cat "$build/build.log" >&2; exit 1; }

# The at-exit leak check stays on. Per-input leak checks only where one
# input's allocations are freed by the next (the targets that run
# goroutines keep recycled states and results, which looks like growth).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
per_input_leaks() {
  case "$1" in api_body | router) echo 1 ;; *) echo 0 ;; esac
}

mkdir -p "$build/logs"
failed=()
printf '%-12s %10s %8s %8s %8s %s\n' target runs exec/s cov ft result
for t in $targets; do
  bin=$build/fuzz/fuzz_$t
  corpus=$build/corpus/$t
  artifacts=$build/artifacts/$t
  log=$build/logs/$t.log
  mkdir -p "$corpus" "$artifacts"
  args=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096
        -detect_leaks="$(per_input_leaks "$t")" -print_final_stats=1
        -artifact_prefix="$artifacts/")
  [ -f "fuzz/$t.dict" ] && args+=(-dict="fuzz/$t.dict")
  [ "$jobs" -gt 1 ] && args+=(-fork="$jobs")
  # shellcheck disable=SC2206
  args+=(${FUZZ_ARGS:-})
  result=ok
  # The outer bound only tells a hung process from a slow exit.
  if ! timeout $((seconds + 300)) "$bin" "${args[@]}" "$corpus" "fuzz/corpus/$t" \
    >"$log" 2>&1; then
    result="FAILED (see $log)"
    failed+=("$t")
  fi
  last=$(grep -aE '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
  speed=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -1)
  if [ -z "$runs" ]; then # -fork: "#RUNS: cov: C ft: F ... time: Ts ..."
    runs=$(sed -nE 's/^#([0-9]+): .*/\1/p' <<<"$last")
    took=$(sed -nE 's/.* time: ([0-9]+)s.*/\1/p' <<<"$last")
    [ -n "$runs" ] && [ "${took:-0}" -gt 0 ] && speed=$((runs / took))
  fi
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  printf '%-12s %10s %8s %8s %8s %s\n' "$t" "${runs:--}" "${speed:--}" \
    "${cov:--}" "${ft:--}" "$result"
  if [ "$result" != ok ]; then
    grep -aE 'ERROR|fuzz check failed|SUMMARY|^ (got|want|in|values):' "$log" \
      | cut -c1-300 | head -8 >&2 || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all targets ran clean for ${seconds}s each"
