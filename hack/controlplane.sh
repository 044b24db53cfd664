#!/usr/bin/env bash
# Builds the real control-plane binaries used by Ferry's tests and demo — etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler — from the Go modules pinned in hack/tools/controlplane,
# into a git-ignored cache folder named after their versions. Nothing is downloaded but Go modules.
# Prints the folder; skips every binary that is already there, so a second run takes no time.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/tools/controlplane"
k8s_version=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$mod/go.mod")
etcd_version=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$mod/go.mod")
out="$root/bin/controlplane/k8s-${k8s_version}-etcd-${etcd_version}"
mkdir -p "$out"

build() { # build NAME PACKAGE
  local name=$1 pkg=$2
  if [ -x "$out/$name" ]; then return 0; fi
  echo "building $name from $pkg (first run only, about two minutes)" >&2
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
}

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
echo "$out"
