#!/usr/bin/env bash
# The layers' includes point down only, through public headers: no file of
# a layer reaches into another folder with a relative path (the build gives
# each layer the include/ folders of the layers below it, and nothing
# else), and a layer names no public header of a layer above it. common/,
# the bottom, may be included by every layer and includes only itself.
#   tests/layers.sh SOURCE_DIR
set -u
cd "${1:-$(dirname "$0")/..}" || exit 2
status=0
fail() { echo "layers: $*"; status=1; }

# Public headers and the layers that may include them.
declare -A allowed=(
  [gr_common.h]="common core lua api server store client"
  [goroutine.h]="core lua api server store"
  [modules.h]="lua server"
  [api.h]="api server"
  [store.h]="store server"
  [client.h]="client server"
)
for layer in common core lua api server store client; do
  [ -d "$layer" ] || continue
  while IFS=: read -r file line text; do
    fail "$file:$line reaches outside its layer: $text"
  done < <(grep -rnE '^\s*#\s*include\s+"\.\./' "$layer" --include='*.c' --include='*.h')
  for header in "${!allowed[@]}"; do
    case " ${allowed[$header]} " in *" $layer "*) continue ;; esac
    while IFS=: read -r file line text; do
      fail "$file:$line includes $header, the header of a layer above $layer"
    done < <(grep -rnE "^\s*#\s*include\s+\"$header\"" "$layer" --include='*.c' --include='*.h')
  done
done
if [ -d common ]; then
  while IFS=: read -r file line text; do
    header=$(sed -E 's/^[^"]*"([^"]*)".*/\1/' <<<"$text")
    [ -e "common/$header" ] || [ -e "common/include/$header" ] ||
      fail "$file:$line: common/ includes $header, which is not its own"
  done < <(grep -rnE '^\s*#\s*include\s+"' common --include='*.c' --include='*.h')
fi
[ $status = 0 ] && echo "layers: ok"
exit $status
