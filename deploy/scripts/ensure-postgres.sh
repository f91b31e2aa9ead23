#!/usr/bin/env bash
# Installs Debian's PostgreSQL 15 for the benchmarks when it is missing. The
# benchmark starts a private cluster of its own in a temporary directory; the
# package's default cluster is not used.
set -euo pipefail
if [ -x /usr/lib/postgresql/15/bin/postgres ]; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "==> PostgreSQL 15 is not installed: installing Debian's postgresql-15 (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql-15 >/dev/null
[ -x /usr/lib/postgresql/15/bin/postgres ] || { echo "postgresql-15 did not install" >&2; exit 1; }
