#!/usr/bin/env bash
# Builds the real Gitea server used by Ferry's SCM tests from the Go module pinned in hack/tools/gitea
# (sqlite tags, cgo) into a git-ignored cache folder named after its version, and copies Gitea's
# run-time folders (options/, templates/, public/) from the module cache next to the binary.
# Nothing is downloaded but Go modules. Prints the binary path; a second run does no work.
# Needs a C compiler for sqlite (Debian: apt-get install gcc).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mod="$root/hack/tools/gitea"
version=$(awk '$1=="code.gitea.io/gitea"{print $2; exit}' "$mod/go.mod")
out="$root/bin/gitea/$version"
bin="$out/gitea"

if [ ! -x "$bin" ]; then
  mkdir -p "$out"
  echo "building gitea $version (first run only, about six minutes)" >&2
  (cd "$mod" && CGO_ENABLED=1 go build -trimpath -tags 'sqlite sqlite_unlock_notify' \
    -ldflags "-s -w -X main.Version=${version#v} -X 'main.Tags=sqlite sqlite_unlock_notify'" \
    -o "$bin.tmp" code.gitea.io/gitea)
  mv "$bin.tmp" "$bin"
fi

# The binary is built without bindata, so it reads these from STATIC_ROOT_PATH at run time.
src=$(cd "$mod" && go list -m -f '{{.Dir}}' code.gitea.io/gitea)
for dir in options templates public; do
  if [ ! -d "$out/$dir" ]; then
    cp -R "$src/$dir" "$out/$dir.tmp"
    chmod -R u+w "$out/$dir.tmp" # module cache files are read-only; keep the cache removable
    mv "$out/$dir.tmp" "$out/$dir"
  fi
done
echo "$bin"
