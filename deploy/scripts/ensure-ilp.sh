#!/usr/bin/env bash
# Installs Debian's COIN-OR CBC when it is missing: the integer-program
# attacker test (cmd/trustpulse/ilp_*_test.go) writes its models in CPLEX LP
# format and solves them with the `cbc` binary.
set -euo pipefail
if command -v cbc >/dev/null 2>&1; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "==> CBC is not on PATH: installing Debian's coinor-cbc (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq coinor-cbc >/dev/null
command -v cbc >/dev/null || { echo "cbc still not on PATH" >&2; exit 1; }
echo "==> installed $(dpkg-query -W -f='coinor-cbc ${Version}' coinor-cbc)"
