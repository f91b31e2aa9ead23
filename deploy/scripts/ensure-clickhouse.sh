#!/usr/bin/env bash
# Installs Debian's ClickHouse server when no ClickHouse is on PATH. trustpulse
# runs it as a plain child process with its own config (deploy/localch); the
# package's system service is neither needed nor started.
set -euo pipefail
if command -v clickhouse-server >/dev/null 2>&1 || command -v clickhouse >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "==> ClickHouse is not on PATH: installing Debian's clickhouse-server (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
command -v clickhouse-server >/dev/null || { echo "clickhouse-server still not on PATH" >&2; exit 1; }
echo "==> installed $(dpkg-query -W -f='clickhouse-server ${Version}' clickhouse-server)"
