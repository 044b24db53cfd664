#!/usr/bin/env bash
# Builds the real promtool pinned in hack/tools/promtool (a separate Go module, so Prometheus' dependencies never
# touch Ferry's go.mod) into a git-ignored cache folder named after its version. Nothing is downloaded but Go
# modules. Prints the binary's path; a second run finds the binary and does no work.
# The alert-rule tests in internal/metrics read the path from FERRY_PROMTOOL: `export FERRY_PROMTOOL=$(hack/promtool.sh)`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/tools/promtool"
version=$(awk '$1=="github.com/prometheus/prometheus"{print $2; exit}' "$mod/go.mod")
out="$root/bin/promtool/$version"
bin="$out/promtool"

if [ ! -x "$bin" ]; then
  mkdir -p "$out"
  echo "building promtool $version (first run only, a few minutes)" >&2
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" github.com/prometheus/prometheus/cmd/promtool)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
