#!/usr/bin/env bash
# Builds the real Flux controllers that Ferry's tests of sync.mode Flux run against — source-controller and
# kustomize-controller, pinned in hack/tools/flux (a separate Go module, so Flux's dependencies never touch Ferry's
# go.mod) — into a git-ignored cache folder named after their versions, and copies their CRDs from the module
# source into crds/ next to them. Nothing is downloaded but Go modules. Prints the folder; a second run finds
# everything in place and does no work.
# Tests read the folder from FERRY_FLUX: `export FERRY_FLUX=$(hack/flux.sh)`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/tools/flux"
source_version=$(awk '$1=="github.com/fluxcd/source-controller" && $2 ~ /^v[0-9]/{print $2; exit}' "$mod/go.mod")
kustomize_version=$(awk '$1=="github.com/fluxcd/kustomize-controller" && $2 ~ /^v[0-9]/{print $2; exit}' "$mod/go.mod")
out="$root/bin/flux/source-${source_version}-kustomize-${kustomize_version}"
mkdir -p "$out"

build() { # build NAME PACKAGE
  local name=$1 pkg=$2
  if [ -x "$out/$name" ]; then return 0; fi
  echo "building $name from $pkg (first run only, a few minutes)" >&2
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
}

build source-controller github.com/fluxcd/source-controller
build kustomize-controller github.com/fluxcd/kustomize-controller

crds="$out/crds"
if [ ! -f "$crds/.complete" ]; then
  rm -rf "$crds.tmp"
  mkdir -p "$crds.tmp"
  for m in github.com/fluxcd/source-controller github.com/fluxcd/kustomize-controller; do
    src=$(cd "$mod" && go list -m -f '{{.Dir}}' "$m")
    for f in "$src"/config/crd/bases/*.yaml; do
      # Module files are read-only; the copies are ours to replace on the next version.
      install -m 0644 "$f" "$crds.tmp/$(basename "$f")"
    done
  done
  touch "$crds.tmp/.complete"
  rm -rf "$crds"
  mv "$crds.tmp" "$crds"
fi
echo "$out"
