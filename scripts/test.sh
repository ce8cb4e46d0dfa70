#!/usr/bin/env bash
# Installs what is missing, checks the C files' format, builds, and runs
# every test: the normal build, then AddressSanitizer+UBSan, then
# ThreadSanitizer; then builds the Release variant (-O3, as a packager
# would) without running its tests. Exits non-zero on any failure. Set
# GR_TEST_VARIANTS="normal" (or "asan tsan", ...; the default is
# "normal asan tsan release") to run fewer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# The format check, first, since it takes seconds: every tracked C file
# (from a source tree without .git: every one outside build*/) must be as
# clang-format 14 writes it with the root's .clang-format.
echo "== format"
format=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$format" ] || { echo "format: clang-format is missing (scripts/setup.sh installs it)" >&2; exit 1; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -d '' sources < <(git ls-files -z -- '*.c' '*.h')
else
  mapfile -d '' sources < <(find . \( -path './build*' -o -name node_modules \) -prune \
    -o -type f -name '*.[ch]' -print0 | sort -z)
fi
unformatted=()
for f in "${sources[@]}"; do
  [ -f "$f" ] || continue # tracked, but deleted in this checkout
  "$format" --dry-run --Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done
if [ ${#unformatted[@]} -gt 0 ]; then
  echo "format: not formatted with $format (fix: $format -i FILE...):" >&2
  printf '  %s\n' "${unformatted[@]}" >&2
  exit 1
fi
echo "format: ${#sources[@]} files ok"

variants=${GR_TEST_VARIANTS:-normal asan tsan release}
jobs=$(nproc)
failed=()
for variant in $variants; do
  if [ "$variant" = release ]; then
    # Only built: the optimizer's warnings (-Werror) are what it checks.
    echo "== release: build only"
    scripts/build.sh release || failed+=("release")
    continue
  fi
  echo "== $variant: build"
  scripts/build.sh "$variant"
  echo "== $variant: test"
  case "$variant" in
    asan) export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
    tsan) export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ;;
  esac
  if ! ctest --test-dir "build/$variant" --output-on-failure -j"$jobs" --timeout 600; then
    failed+=("$variant")
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
done

# The libFuzzer targets, once: GR_FUZZ_SECONDS (10) each, 0 skips them.
if [ "${GR_FUZZ_SECONDS:-10}" != 0 ]; then
  echo "== fuzz"
  scripts/fuzz.sh "${GR_FUZZ_SECONDS:-10}" || failed+=("fuzz")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all tests passed ($variants)"
