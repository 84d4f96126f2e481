#!/usr/bin/env bash
# make bench: pushes a generated file of $BENCH_EVENTS Userpilot events through a running
# release-built stack, end to end, and prints events/s from the moment `cairn ingest` starts
# until the last row is committed in PostgreSQL; then times the format layer alone, per
# format, on one core.
set -euo pipefail
cd "$(dirname "$0")/.."

events=${BENCH_EVENTS:-100000}
bin=.build/release
work=$(mktemp -d /tmp/cairn-bench-XXXXXX)
# The embedded PostgreSQL runs as an unprivileged user when we are root; it must reach the data dir.
chmod 755 "$work"
data=$work/var
export CAIRN_DATA_DIR=$data
# Any free port for HTTP ingest; the bench asks the stack which one it got.
export CAIRN_HTTP_ADDR=127.0.0.1:0
unset CAIRN_RUN_DIR CAIRN_DATABASE_URL

cleanup() {
    if [ -n "${supervisor:-}" ] && kill -0 "$supervisor" 2>/dev/null; then
        kill -TERM "$supervisor"
        wait "$supervisor" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "bench: generating $events events" >&2
python3 bench/generate.py "$events" "$work/events.jsonl" --app bench

"$bin/cairn-supervisor" --stack compose/default.json >"$work/supervisor.log" 2>&1 &
supervisor=$!
for _ in $(seq 1 600); do
    if "$bin/cairn" status --format json 2>/dev/null | grep -q '"phase":"running"'; then break; fi
    kill -0 "$supervisor" 2>/dev/null || { cat "$work/supervisor.log" >&2; exit 1; }
    sleep 0.2
done

psql_count() {
    psql "host=$data/postgres/sock user=cairn dbname=cairn" -Atc "SELECT count(*) FROM events WHERE app_token = '${app:-bench}'" 2>/dev/null \
        || echo 0
}
# When running as root the cluster may live under /var/tmp; ask the supervisor's stack for the socket.
if ! [ -S "$data/postgres/sock/.s.PGSQL.5432" ]; then
    sock=$(ls -d /var/tmp/cairn-pg-*/sock 2>/dev/null | head -1)
    psql_count() { psql "host=$sock user=cairn dbname=cairn" -Atc "SELECT count(*) FROM events WHERE app_token = '${app:-bench}'" 2>/dev/null || echo 0; }
fi

# Waits until every event of app $1 ($2 of them) is committed: first until ingest's spool is
# empty (cheap to ask), then one count to confirm. Polling count(*) itself would load the
# database it measures.
spool_depth() {
    "$bin/cairn" status --format json 2>/dev/null \
        | python3 -c "import json,sys; print(next(s['status']['spool_depth'] for s in json.load(sys.stdin)['services'] if s['name'] == 'ingest'))" 2>/dev/null \
        || echo 1
}
wait_committed() {
    while true; do
        while [ "$(spool_depth)" != 0 ]; do sleep 0.05; done
        [ "$(app=$1 psql_count)" -ge "$2" ] && return
        sleep 0.05
    done
}

"$bin/cairn" apps create bench >/dev/null

start=$(date +%s.%N)
"$bin/cairn" ingest "$work/events.jsonl" --app bench --batch-size 2000 >"$work/ingest.out"
acked=$(date +%s.%N)
wait_committed bench "$events"
done_at=$(date +%s.%N)

python3 - "$events" "$start" "$acked" "$done_at" <<'PY'
import sys
n, start, acked, done = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"bench: {n} events, ingest acknowledged in {acked - start:.2f} s, all committed in {done - start:.2f} s")
print(f"bench: end to end {n / (done - start):,.0f} events/s (acknowledgement rate {n / (acked - start):,.0f} events/s)")
PY

# HTTP ingest: Segment batches of 100 over 32 connections, then until the last is committed.
http_events=${BENCH_HTTP_EVENTS:-200000}
http_addr=$("$bin/cairn" status --format json | python3 -c "import json,sys; print(next(s['status']['http_address'] for s in json.load(sys.stdin)['services'] if s['name'] == 'ingest'))")
http_key=$("$bin/cairn" apps create http-bench | awk '/write key/ {print $NF}')
echo
http_start=$(date +%s.%N)
"$bin/cairn-http-bench" "http://$http_addr" "$http_key" "$http_events" 32 100
wait_committed http-bench "$http_events"
http_done=$(date +%s.%N)
python3 -c "import sys; n, a, b = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]); print(f'http: end to end {n / (b - a):,.0f} events/s committed in PostgreSQL (target 30,000: {\"met\" if n / (b - a) >= 30000 else \"MISSED\"})')" "$http_events" "$http_start" "$http_done"

echo
"$bin/cairn-format-bench"
echo
"$bin/cairn-identity-bench"
echo
python3 bench/reports.py
