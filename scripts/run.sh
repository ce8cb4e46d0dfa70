#!/usr/bin/env bash
# Installs what is missing, builds, and runs goroutined. Extra arguments go
# to `goroutined run`; with none, it runs the bundled worker-pool example.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh normal
if [ $# -eq 0 ]; then
  set -- examples/worker_pool.lua
fi
exec build/normal/goroutined run "$@"
