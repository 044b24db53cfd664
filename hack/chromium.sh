#!/usr/bin/env bash
# Prints the path of the headless Chromium that the dashboard's browser tests drive (internal/dashboard). It is
# Debian's chromium package: installed with apt-get when missing and this runs as root; nothing is downloaded
# from anywhere else. Fails, saying so, when Chromium is missing and cannot be installed.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium >&2
  else
    echo "chromium is not installed: run 'apt-get install chromium' as root" >&2
    exit 1
  fi
fi
command -v chromium
