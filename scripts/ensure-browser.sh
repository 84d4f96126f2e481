#!/usr/bin/env bash
# Installs the real browser the console tests drive, and only when it is missing: Debian's
# chromium (run headless) and chromium-driver (chromedriver, which selenium talks to).
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "cairn: installing ${missing[*]} for the console's browser tests" >&2
"$(dirname "$0")/apt-install.sh" "${missing[@]}"
