#!/usr/bin/env bash
# Fetches axe-core, the accessibility rules engine, from the npm registry
# (npm checks its integrity) for the dashboard's accessibility test, which
# runs it inside the pages in headless Chromium. Usage: fetch-axe.sh DEST_DIR
set -euo pipefail
dest="${1:-.cache/axe}"
version="4.14.1"
if [ -f "$dest/axe.min.js" ]; then exit 0; fi
command -v npm >/dev/null || { echo "npm is needed to fetch axe-core (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "==> fetching axe-core $version from the npm registry"
(cd "$tmp" && npm pack --silent "axe-core@$version" >/dev/null)
tar -xzf "$tmp/axe-core-$version.tgz" -C "$tmp" package/axe.min.js
mv "$tmp/package/axe.min.js" "$dest/axe.min.js.part"
mv "$dest/axe.min.js.part" "$dest/axe.min.js"
echo "==> $dest/axe.min.js ready"
