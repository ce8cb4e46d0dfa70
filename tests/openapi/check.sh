#!/usr/bin/env bash
# check.sh - the OpenAPI checks of goroutined, runnable from any directory.
#   check.sh lint                      lint openapi.yaml with Redocly
#   check.sh validate CAPTURES.jsonl   check captured exchanges against it
#   check.sh sample [GOROUTINED]       capture a real server's answers with
#                                      sample_captures.sh and validate them
# Installs the pinned tools (npm ci) first when node_modules is missing or
# older than package-lock.json.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
spec=$(cd "$here/../.." && pwd)/openapi.yaml

usage() { echo "usage: $0 lint | validate CAPTURES.jsonl | sample [GOROUTINED]" >&2; exit 2; }
for tool in node npm; do
  command -v "$tool" >/dev/null ||
    { echo "$0: '$tool' is not installed; the OpenAPI checks need Node.js ^18.19 or >= 20.6 with npm" >&2; exit 1; }
done

if [[ ! -d $here/node_modules || $here/node_modules -ot $here/package-lock.json ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    { echo "$0: npm ci failed in $here" >&2; exit 1; }
  touch "$here/node_modules" # npm ci may keep an old mtime; mark it fresh
fi

case ${1:-} in
  lint)
    [[ $# -eq 1 ]] || usage
    REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
      exec "$here/node_modules/.bin/redocly" lint --config "$here/redocly.yaml" "$spec" ;;
  validate)
    [[ $# -eq 2 ]] || usage
    [[ -f $2 ]] || { echo "$0: no such file: $2" >&2; exit 2; }
    exec node "$here/validate.mjs" --spec "$spec" "$2" ;;
  sample)
    [[ $# -le 2 ]] || usage
    [[ $# -eq 2 ]] && export GOROUTINED=$2
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
    "$here/sample_captures.sh" "$out"
    node "$here/validate.mjs" --spec "$spec" "$out" ;;
  *) usage ;;
esac
