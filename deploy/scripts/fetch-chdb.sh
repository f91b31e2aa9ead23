#!/usr/bin/env bash
# Fetches libchdb.so, the current ClickHouse engine as an in-process library,
# from the npm package @chdb/lib-linux-x64-gnu (npm checks its integrity), for
# the compatibility test. Usage: fetch-chdb.sh DEST_DIR
set -euo pipefail
dest="${1:-.cache/chdb}"
version="26.5.3"
if [ -f "$dest/libchdb.so" ]; then exit 0; fi
command -v npm >/dev/null || { echo "npm is needed to fetch libchdb.so (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dest"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "==> fetching libchdb.so (ClickHouse $version engine, about 170 MB) from the npm registry"
(cd "$tmp" && npm pack --silent "@chdb/lib-linux-x64-gnu@$version" >/dev/null)
tar -xzf "$tmp/chdb-lib-linux-x64-gnu-$version.tgz" -C "$tmp" package/libchdb.so
mv "$tmp/package/libchdb.so" "$dest/libchdb.so.part"
mv "$dest/libchdb.so.part" "$dest/libchdb.so"
echo "==> $dest/libchdb.so ready"
