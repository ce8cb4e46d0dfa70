#!/usr/bin/env bash
# Configures and builds one variant: scripts/build.sh [normal|asan|tsan|release].
# The build goes to build/<variant>; prints nothing but errors.
#   normal   RelWithDebInfo, what scripts/run.sh serves and the tests run on
#   asan     Debug with AddressSanitizer + UBSan
#   tsan     RelWithDebInfo with ThreadSanitizer
#   release  Release (-O3), as a packager builds it
# Warnings are errors here (-DGR_WERROR=ON), unlike a plain cmake build.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-normal}
case "$variant" in
  normal)  sanitize="" ; type=RelWithDebInfo ;;
  asan)    sanitize=address ; type=Debug ;;
  tsan)    sanitize=thread ; type=RelWithDebInfo ;;
  release) sanitize="" ; type=Release ;;
  *) echo "usage: $0 [normal|asan|tsan|release]" >&2; exit 2 ;;
esac
cmake -S . -B "build/$variant" -DCMAKE_BUILD_TYPE="$type" -DGR_SANITIZE="$sanitize" -DGR_WERROR=ON \
  -Wno-dev >/dev/null
cmake --build "build/$variant" -j"$(nproc)" -- --no-print-directory >/dev/null
