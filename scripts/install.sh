#!/usr/bin/env bash
# Installs built binaries and the default stack file under a prefix:
#   PREFIX/libexec/cairn/   every executable and the console's resources (found beside them)
#   PREFIX/bin/             cairn and cairn-supervisor, as links into libexec
#   PREFIX/etc/cairn/       stack.json (the embedded default), kept when it already exists
# Usage: scripts/install.sh --prefix DIR [--from BUILD_DIR] [--destdir DIR]
set -euo pipefail

prefix=/usr/local
from=.build/release
destdir=
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --from) from=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        *) echo "install.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 64 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
executables=(cairn cairn-supervisor cairn-ingest cairn-identity cairn-storage cairn-reporting cairn-export)
for name in "${executables[@]}"; do
    [ -x "$from/$name" ] || { echo "install.sh: $from/$name is missing; build first (make install builds it)" >&2; exit 1; }
done
[ -d "$from/Cairn_CairnConsole.resources" ] || { echo "install.sh: $from/Cairn_CairnConsole.resources is missing" >&2; exit 1; }

libexec="$destdir$prefix/libexec/cairn"
bin="$destdir$prefix/bin"
etc="$destdir$prefix/etc/cairn"
install -d -m 0755 "$libexec" "$bin" "$etc"
for name in "${executables[@]}"; do
    install -m 0755 "$from/$name" "$libexec/$name"
done
rm -rf "$libexec/Cairn_CairnConsole.resources"
cp -R "$from/Cairn_CairnConsole.resources" "$libexec/"
chmod -R u=rwX,go=rX "$libexec/Cairn_CairnConsole.resources"
for name in cairn cairn-supervisor; do
    ln -sfn "../libexec/cairn/$name" "$bin/$name"
done
if [ -e "$etc/stack.json" ]; then
    echo "install.sh: kept the existing $etc/stack.json" >&2
else
    install -m 0644 "$root/compose/default.json" "$etc/stack.json"
fi
echo "installed Cairn $("$libexec/cairn" --version 2>/dev/null || echo) under $destdir$prefix"
