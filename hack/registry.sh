#!/usr/bin/env bash
# Makes the CNCF distribution registry (Debian's docker-registry package) available for Ferry's interop tests
# and benchmark, installing it with apt-get when missing, and prints the binary's path. Idempotent: a second run
# only prints the path. Tests read the path from FERRY_DOCKER_REGISTRY; the package's own service is not started
# (tests run their own instance on a loopback port with a temporary config).
set -euo pipefail

bin=/usr/bin/docker-registry
if [ ! -x "$bin" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "docker-registry is not installed and installing it needs root (apt-get install docker-registry)" >&2
    exit 1
  fi
  echo "installing Debian package docker-registry (first run only)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends docker-registry >&2
fi
echo "$bin"
