#!/usr/bin/env bash
# Builds helm from the Go module proxy into a cache directory when it is not
# there yet: the chart test (deploy/helm_test.go) runs `helm lint` and
# `helm template` on deploy/helm/trustpulse. `go install` checks every module
# it downloads against the Go checksum database. The first build takes about
# four minutes on the project's 2-core machines.
# Usage: ensure-helm.sh [DEST_DIR] (default .cache/helm)
set -euo pipefail
dest="${1:-.cache/helm}"
version="v3.22.0"
bin="$dest/helm"
command -v go >/dev/null || { echo "go is needed to build helm" >&2; exit 1; }
# helm built by `go install` reports only "v3.22" itself; its build info
# names the exact module version.
if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -Eq "^\s+mod\s+helm.sh/helm/v3\s+$version\s"; then exit 0; fi
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
echo "==> building helm $version from the Go module proxy (a few minutes the first time)"
start=$SECONDS
GOBIN="$dest" CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$version"
echo "==> $dest/helm ready: helm $version in $((SECONDS - start)) s"
