#!/usr/bin/env bash
# Builds the real cosign CLI pinned in hack/tools/cosign (a separate Go module, so cosign's dependencies never
# touch Ferry's go.mod) into a git-ignored cache folder named after its version. Nothing is downloaded but Go
# modules. Prints the binary's path; a second run finds the binary and does no work.
# Interop tests read the path from FERRY_COSIGN: `export FERRY_COSIGN=$(hack/cosign.sh)`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/tools/cosign"
version=$(awk '$1=="github.com/sigstore/cosign/v3"{print $2; exit}' "$mod/go.mod")
out="$root/bin/cosign/$version"
bin="$out/cosign"

if [ ! -x "$bin" ]; then
  mkdir -p "$out"
  echo "building cosign $version (first run only, several minutes)" >&2
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" github.com/sigstore/cosign/v3/cmd/cosign)
  mv "$bin.tmp" "$bin"
fi
echo "$bin"
