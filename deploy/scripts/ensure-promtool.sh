#!/usr/bin/env bash
# Installs Debian's promtool when it is missing: the metrics test
# (cmd/trustpulse/metrics_test.go) lints a scrape of a running trustpulse
# with `promtool check metrics`. promtool ships in Debian's prometheus
# package; only the binary is used, the server it brings is not started.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "==> promtool is not on PATH: installing Debian's prometheus (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null || { echo "promtool still not on PATH" >&2; exit 1; }
echo "==> installed $(dpkg-query -W -f='prometheus ${Version}' prometheus)"
