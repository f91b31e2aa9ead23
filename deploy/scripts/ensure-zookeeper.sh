#!/usr/bin/env bash
# Installs Debian's Apache ZooKeeper for the ClickHouse cluster tests when it
# is missing. The tests start private ZooKeeper processes of their own
# (deploy/zookeeper) on loopback ports with their own data directories; the
# package's system service is neither needed nor started.
set -euo pipefail
if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "==> ZooKeeper is not installed: installing Debian's zookeeper (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
[ -f /usr/share/java/zookeeper.jar ] || { echo "zookeeper did not install (/usr/share/java/zookeeper.jar missing)" >&2; exit 1; }
echo "==> installed $(dpkg-query -W -f='zookeeper ${Version}' zookeeper)"
