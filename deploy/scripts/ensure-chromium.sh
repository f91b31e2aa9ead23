#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing. The
# tests drive it headless through the DevTools protocol (chromedp).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "==> Chromium is not installed: installing Debian's chromium (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null || { echo "chromium still not on PATH" >&2; exit 1; }
