#!/usr/bin/env bash
# Installs the real Segment-protocol client libraries the HTTP ingest tests drive, in a virtual
# environment under the build folder, once: segment-analytics-python 2.3.4 (write key in the
# body) and rudder-sdk-python 2.1.9 (write key as Basic auth, gzip by default); selenium 4.51.0,
# which drives Debian's chromium for the console's browser tests; and moto 5.2.1 (its S3 server)
# with boto3 1.43.11, the local object store the S3 destination's tests write to and read back;
# and aiosmtpd 1.4.6, the SMTP server the e-mail triggers' tests send to.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.build/python-clients
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import segment.analytics, rudderstack.analytics, selenium, boto3, moto.server, aiosmtpd" 2>/dev/null; then
    exit 0
fi
mkdir -p .build
if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 keeps venv in its own package.
    echo "cairn: installing python3-venv" >&2
    scripts/apt-install.sh python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv"
fi
echo "cairn: installing segment-analytics-python, rudder-sdk-python, selenium, moto, boto3 and aiosmtpd into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check segment-analytics-python==2.3.4 rudder-sdk-python==2.1.9 selenium==4.51.0 \
    "moto[server]==5.2.1" boto3==1.43.11 aiosmtpd==1.4.6
