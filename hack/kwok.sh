#!/usr/bin/env bash
# Builds the kwok simulator pinned in hack/tools/kwok (a separate Go module, so kwok's dependencies never touch
# Ferry's go.mod) into a git-ignored cache folder named after its version, and copies kwok's own Stage objects
# (fast node initialisation, node heartbeat, fast pod lifecycle) from the module source into stages/ next to the
# binary: kwok needs them in --config to make fake Nodes Ready and run their Pods. Nothing is downloaded but Go
# modules. Prints the binary's path; a second run finds everything in place and does no work.
# Tests and the demo read the path from FERRY_KWOK: `export FERRY_KWOK=$(hack/kwok.sh)`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/tools/kwok"
version=$(awk '$1=="sigs.k8s.io/kwok"{print $2; exit}' "$mod/go.mod")
out="$root/bin/kwok/$version"
bin="$out/kwok"
stages="$out/stages"

if [ ! -x "$bin" ]; then
  mkdir -p "$out"
  echo "building kwok $version (first run only, about a minute)" >&2
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" sigs.k8s.io/kwok/cmd/kwok)
  mv "$bin.tmp" "$bin"
fi

if [ ! -f "$stages/.complete" ]; then
  src=$(cd "$mod" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  rm -rf "$stages.tmp"
  mkdir -p "$stages.tmp"
  for set in node/fast node/heartbeat pod/fast; do
    for f in "$src/kustomize/stage/$set"/*.yaml; do
      [ "$(basename "$f")" = kustomization.yaml ] && continue
      # Module files are read-only; the copies are ours to replace on the next version.
      install -m 0644 "$f" "$stages.tmp/${set//\//-}-$(basename "$f")"
    done
  done
  touch "$stages.tmp/.complete"
  rm -rf "$stages"
  mv "$stages.tmp" "$stages"
fi
echo "$bin"
