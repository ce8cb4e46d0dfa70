#!/usr/bin/env bash
# Installs what is missing, builds, and serves the HTTP API on
# 127.0.0.1:8080 (stop it with Ctrl-C). Extra arguments go to
# `goroutined serve` (see `build/normal/goroutined serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/build.sh normal
exec build/normal/goroutined serve "$@"
