#!/usr/bin/env bash
# run.sh GOROUTINED [SCREENSHOT.png] - the dashboard's browser test, runnable
# from any directory: Debian's headless Chromium (/usr/bin/chromium, or
# $CHROMIUM) driven by the pinned playwright-core against GOROUTINED. The
# screenshot goes to SCREENSHOT.png (default: dashboard.png here, in the
# working directory). Installs playwright-core (npm ci) first when
# node_modules is missing or older than package-lock.json; it downloads no
# browser.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: $0 GOROUTINED [SCREENSHOT.png]" >&2; exit 2; }
bin=$1
out=${2:-$PWD/dashboard.png}
chromium=${CHROMIUM:-/usr/bin/chromium}
[[ -x $bin ]] || { echo "$0: no server binary at $bin" >&2; exit 2; }
[[ -x $chromium ]] ||
  { echo "$0: no Chromium at $chromium; run scripts/setup.sh (Debian package chromium)" >&2; exit 1; }
for tool in node npm; do
  command -v "$tool" >/dev/null ||
    { echo "$0: '$tool' is not installed; the browser test needs Node.js >= 18 with npm" >&2; exit 1; }
done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  { echo "$0: Node.js $(node --version) is too old; playwright-core needs >= 18" >&2; exit 1; }

if [[ ! -d $here/node_modules || $here/node_modules -ot $here/package-lock.json ]]; then
  (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    { echo "$0: npm ci failed in $here" >&2; exit 1; }
  touch "$here/node_modules" # npm ci may keep an old mtime; mark it fresh
fi

exec node "$here/dashboard.mjs" --bin "$bin" --out "$out" --chromium "$chromium"
