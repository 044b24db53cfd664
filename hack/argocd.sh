#!/usr/bin/env bash
# Builds the real Argo CD that Ferry's ArgoCD-mode tests run against, from the Go module pinned in hack/tools/argocd
# (a separate Go module, so Argo CD's dependencies never touch Ferry's go.mod), into a git-ignored cache folder
# named after its version. Nothing is downloaded but Go modules. Argo CD is one multi-call binary that acts on
# the name it is started as, so the folder also holds argocd-application-controller and argocd-repo-server (and
# argocd-git-ask-pass, which the repo-server hands to git) as links to it, the scripts the repo-server runs
# (git-verify-wrapper.sh, gpg-wrapper.sh) and Argo CD's CRDs (crds/*.yaml), both from the same module. Prints the folder; a second run does no work.
# The tests read the folder from FERRY_ARGOCD: `export FERRY_ARGOCD=$(hack/argocd.sh)`. They also need redis-server
# (Debian: apt-get install redis-server).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/tools/argocd"
version=$(awk '$1=="github.com/argoproj/argo-cd/v3"{print $2; exit}' "$mod/go.mod")
out="$root/bin/argocd/$version"
bin="$out/argocd"

if [ ! -x "$bin" ]; then
  mkdir -p "$out"
  echo "building argocd $version (first run only, several minutes)" >&2
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$bin.tmp" github.com/argoproj/argo-cd/v3/cmd)
  mv "$bin.tmp" "$bin"
fi
for name in argocd-application-controller argocd-repo-server argocd-git-ask-pass; do
  [ -L "$out/$name" ] || ln -sf argocd "$out/$name"
done

src=$(cd "$mod" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-cd/v3)
# The repo-server runs these scripts of Argo CD's (its image copies them onto the PATH) for every commit it reads.
for script in git-verify-wrapper.sh gpg-wrapper.sh; do
  if [ ! -x "$out/$script" ]; then
    cp "$src/hack/$script" "$out/$script.tmp"
    chmod 0755 "$out/$script.tmp"
    mv "$out/$script.tmp" "$out/$script"
  fi
done

if [ ! -d "$out/crds" ]; then
  mkdir -p "$out/crds.tmp"
  cp "$src"/manifests/crds/application-crd.yaml "$src"/manifests/crds/appproject-crd.yaml "$out/crds.tmp/"
  chmod -R u+w "$out/crds.tmp" # module cache files are read-only; keep the cache removable
  mv "$out/crds.tmp" "$out/crds"
fi
echo "$out"
