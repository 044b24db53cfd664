#!/usr/bin/env bash
# Makes Prometheus and the Pushgateway (Debian's prometheus and prometheus-pushgateway packages) available for
# the tests of internal/analysis, installing them with apt-get when missing, and prints the two binaries' paths,
# one per line: Prometheus first, then the Pushgateway. Idempotent: a second run only prints the paths. Tests read
# them from FERRY_PROMETHEUS and FERRY_PUSHGATEWAY; the packages' own services are not used (tests run their own
# instances on loopback ports with temporary configs and storage).
#   { read -r FERRY_PROMETHEUS; read -r FERRY_PUSHGATEWAY; } < <(hack/prometheus.sh)
set -euo pipefail

prometheus=/usr/bin/prometheus
pushgateway=/usr/bin/prometheus-pushgateway
missing=()
[ -x "$prometheus" ] || missing+=(prometheus)
[ -x "$pushgateway" ] || missing+=(prometheus-pushgateway)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "${missing[*]} not installed and installing needs root (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages ${missing[*]} (first run only)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
echo "$prometheus"
echo "$pushgateway"
