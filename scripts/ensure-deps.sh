#!/usr/bin/env bash
# Installs the system packages Cairn needs, and only those that are missing:
# libpq (client library and headers), libsqlite3 and zlib headers, pkg-config, and the PostgreSQL
# server that runs the embedded default and the tests.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if command -v pkg-config >/dev/null 2>&1; then
    pkg-config --exists libpq || missing+=(libpq-dev)
    pkg-config --exists sqlite3 || missing+=(libsqlite3-dev)
    pkg-config --exists zlib || missing+=(zlib1g-dev)
else
    missing+=(libpq-dev libsqlite3-dev zlib1g-dev)
fi
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
command -v python3 >/dev/null 2>&1 || missing+=(python3)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "cairn: installing missing system packages: ${missing[*]}" >&2
# The server package must not start its own cluster service; Cairn runs its own.
"$(dirname "$0")/apt-install.sh" "${missing[@]}"
