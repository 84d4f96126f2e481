#!/usr/bin/env python3
"""make bench, reports: loads BENCH_REPORT_EVENTS generated events in every input format
(default 1,000,000; 100,000 users; 30 days) into a fresh release-built stack, then times
every report 5 times through the CLI and prints the p50 against the issue's targets; then
exports everything to Segment batch files, and restarts the stack with a continuous
destination that catches up with everything over HTTP to a local endpoint."""
import http.server
import json
import os
import threading
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

events = int(os.environ.get("BENCH_REPORT_EVENTS", "1000000"))
if events <= 0:
    sys.exit(0)
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bin_dir = os.path.join(root, ".build", "release")
work = tempfile.mkdtemp(prefix="cairn-reports-")
os.chmod(work, 0o755)  # the embedded PostgreSQL runs as an unprivileged user and must reach it
env = dict(os.environ, CAIRN_DATA_DIR=os.path.join(work, "var"))
env.pop("CAIRN_RUN_DIR", None)
env.pop("CAIRN_DATABASE_URL", None)


def cairn(*args, check=True):
    return subprocess.run([os.path.join(bin_dir, "cairn"), *args], env=env, capture_output=True, text=True, check=check)


supervisor = None
try:
    print(f"reports: generating {events:,} events in every format", file=sys.stderr)
    data = os.path.join(work, "events.jsonl")
    subprocess.run([sys.executable, os.path.join(root, "bench", "generate.py"), str(events), data, "--app", "reports", "--formats", "all"], check=True)
    log = open(os.path.join(work, "supervisor.log"), "w")
    supervisor = subprocess.Popen([os.path.join(bin_dir, "cairn-supervisor"), "--stack", os.path.join(root, "compose", "default.json")],
                                  env=env, stdout=log, stderr=log)
    for _ in range(600):
        status = cairn("status", "--format", "json", check=False)
        if '"phase":"running"' in status.stdout:
            break
        time.sleep(0.2)
    cairn("apps", "create", "reports")
    cairn("attributes", "set", "--app", "reports", "--name", "price", "--type", "number")
    started = time.perf_counter()
    cairn("ingest", data, "--app", "reports", "--batch-size", "2000", check=False)
    while True:
        stored = json.loads(cairn("report", "events", "--app", "reports", "--format", "json").stdout)["rows"]
        total = sum(row["events"] for row in stored)
        spool = json.loads(cairn("status", "--format", "json").stdout)
        depth = next((s["status"].get("spool_depth", 0) for s in spool["services"] if s["name"] == "ingest"), 0)
        if depth == 0 and total > 0:
            break
        time.sleep(1)
    loaded = time.perf_counter() - started
    print(f"reports: loaded {total:,} stored events in {loaded:.1f} s ({total / loaded:,.0f} events/s end to end)")

    reports = [
        ("events", ["report", "events"], 0.1),
        ("uniques", ["report", "uniques", "--by", "day"], 0.1),
        ("stats", ["report", "stats", "--event", "Purchased", "--attr", "price"], 0.1),
        ("engagement", ["report", "engagement", "--entity", "flow"], 0.1),
        ("companies", ["report", "companies", "--top", "20"], 0.1),
        ("users", ["report", "users", "--did", "Purchased", "--times", ">2", "--limit", "100"], 1.0),
        ("funnel", ["report", "funnel", "--step", "Guide Started", "--step", "Guide Completed", "--within", "7d"], 1.0),
        ("retention", ["report", "retention", "--start-event", "Purchased", "--return-event", "Purchased", "--by", "week", "--periods", "4"], 1.0),
        ("sessions", ["report", "sessions"], 1.0),
    ]
    print(f"{'report':<12}{'p50 ms':>10}{'target ms':>11}  result")
    for name, args, target in reports:
        times = []
        for _ in range(5):
            began = time.perf_counter()
            result = cairn(*args, "--app", "reports", "--format", "json", check=False)
            times.append(time.perf_counter() - began)
            if result.returncode != 0:
                print(f"{name:<12} failed: {result.stderr.strip()[:200]}")
                break
        p50 = statistics.median(times) * 1000
        verdict = "met" if p50 <= target * 1000 else "MISSED"
        print(f"{name:<12}{p50:>10.0f}{target * 1000:>11.0f}  {verdict}")

    # Export: every stored event to Segment batch files, and the export service's peak memory.
    export_pid = next(s["pid"] for s in json.loads(cairn("status", "--format", "json").stdout)["services"] if s["name"] == "export")
    out = os.path.join(work, "segment")
    began = time.perf_counter()
    result = cairn("export", "segment", "--app", "reports", "--out", out, check=False)
    took = time.perf_counter() - began
    if result.returncode != 0:
        print(f"export failed: {result.stderr.strip()[:200]}")
    else:
        exported = int(result.stdout.split()[1])  # "exported N messages in M batch files to DIR"
        peak_kb = next(int(line.split()[1]) for line in open(f"/proc/{export_pid}/status") if line.startswith("VmHWM:"))
        rate = exported / took
        print(f"export: {exported:,} events to Segment batch files in {took:.1f} s: {rate:,.0f} events/s "
              f"(target 100,000: {'met' if rate >= 100_000 else 'MISSED'}); export service peak {peak_kb / 1024:.0f} MB resident "
              f"(target under 200 MB: {'met' if peak_kb < 200 * 1024 else 'MISSED'})")

    # Continuous export: the same stack restarted with a destination declared in its stack
    # file, catching up with every stored event and link over HTTP to a local endpoint.
    supervisor.terminate()
    supervisor.wait(timeout=60)
    supervisor = None
    received = {"messages": 0, "requests": 0, "first": 0.0, "last": 0.0}
    lock = threading.Lock()

    class Receiver(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per response, without Nagle: otherwise delayed ACKs cost 40 ms a batch.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                received["messages"] += body.count(b'"messageId"')
                received["requests"] += 1
                received["first"] = received["first"] or time.perf_counter()
                received["last"] = time.perf_counter()
            self.send_response(200)
            self.send_header("Content-Length", "16")
            self.end_headers()
            self.wfile.write(b'{"success":true}')

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stack = json.load(open(os.path.join(root, "compose", "default.json")))
    for service in stack["services"]:
        if service["name"] == "export":
            service["settings"] = {"destinations": [{"name": "bench", "app": "reports", "url": f"http://127.0.0.1:{server.server_port}/v1/batch",
                                                     "write_key_env": "CAIRN_BENCH_WRITE_KEY", "poll_interval_ms": 100}]}
    stack_path = os.path.join(work, "continuous.json")
    json.dump(stack, open(stack_path, "w"))
    env["CAIRN_BENCH_WRITE_KEY"] = "bench-key"
    supervisor = subprocess.Popen([os.path.join(bin_dir, "cairn-supervisor"), "--stack", stack_path], env=env, stdout=log, stderr=log)
    export_pid = None
    for _ in range(3000):  # the clock starts when the export service does
        status = cairn("status", "--format", "json", check=False)
        if status.returncode == 0:
            export_pid = next((s.get("pid") for s in json.loads(status.stdout)["services"] if s["name"] == "export"), None)
            if export_pid:
                break
        time.sleep(0.02)
    began = time.perf_counter()
    row = {}
    for _ in range(3000):
        time.sleep(0.2)
        status = cairn("export", "status", "--format", "json", check=False)
        if status.returncode == 0:
            rows = json.loads(status.stdout)["rows"]
            row = rows[0] if rows else {}
            if row.get("pending") == 0 and row.get("delivered", 0) > 0:
                break
    took = received["last"] - began
    delivered = row.get("delivered", 0)
    peak_kb = next(int(line.split()[1]) for line in open(f"/proc/{export_pid}/status") if line.startswith("VmHWM:"))
    print(f"continuous export: {delivered:,} messages over HTTP in {received['requests']:,} batches in {took:.1f} s: {delivered / took:,.0f} messages/s "
          f"(receiver counted {received['messages']:,}; first batch {received['first'] - began:.1f} s after the service started); "
          f"export service peak {peak_kb / 1024:.0f} MB resident")
    server.shutdown()
finally:
    if supervisor is not None:
        supervisor.terminate()
        supervisor.wait(timeout=60)
    shutil.rmtree(work, ignore_errors=True)
