#!/usr/bin/env bash
# Installs the Debian packages named as arguments, as root or through sudo: the one way every
# ensure-* script installs what is missing. Quiet unless something fails.
set -euo pipefail
[ $# -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "cairn: need root (or sudo) to install: $*" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
