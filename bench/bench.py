#!/usr/bin/env python3
"""make bench: Cairn measured against the limit of its own database, side by side in one run.

1. Generates a deterministic dataset: BENCH_EVENTS events (default 1,000,000), 100,000 users,
   2,000 companies, 30 days, every input format in realistic proportions.
2. Runs one PostgreSQL server for everything, and gives every measurement a fresh database on it:
   - limit: `psql \\copy` of the canonical rows Cairn stored (from `cairn export jsonl`, turned into
     COPY text here) into the same schema, indexes and triggers;
   - cli: `cairn ingest` of the whole dataset, until the last row is committed;
   - http: the same records over the HTTP routes (each format to its own route), 32 connections,
     100 per batch, until the last row is committed; with the acknowledgement latencies;
   each the median of BENCH_RUNS runs (default 3).
   - scale: two HTTP clients against one ingest instance, then against two (README, "Scale"),
     BENCH_SCALE_EVENTS records (default 200,000), acknowledged and committed;
   - triggers: the delay from acknowledgement to webhook (an upper bound on the delay from
     commit) for 50 events sent one at a time, and deliveries per second to a local receiver;
3. Times the format adapters and the identity resolver alone, every report (p50 of 5) and an
   export to files, on the stack the first cli run loaded.
4. Records the peak resident memory of every service and of PostgreSQL.
5. Prints one table (figure, value, ratio to the limit, target, result) and writes the same data
   to bench/results/<date>.json.
"""
import datetime
import glob
import base64
import json
import re
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import idle  # noqa: E402  (bench/idle.py, beside this file)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "release")
EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
APP = "bench"
# Records the scale row sends (the first of the dataset): enough for seconds of steady load.
SCALE_EVENTS = int(os.environ.get("BENCH_SCALE_EVENTS", "200000"))
# The trigger rows: pings for the delay, then matching events for the delivery rate.
TRIGGER_PINGS = 50
TRIGGER_LOAD = int(os.environ.get("BENCH_TRIGGER_EVENTS", "20000"))
OPEN_SECONDS = int(os.environ.get("BENCH_OPEN_SECONDS", "60"))
# The e-mail trigger rows: the same pings, then this many matching events, each a message over
# STARTTLS with AUTH to a local aiosmtpd (one connection per message).
EMAIL_LOAD = int(os.environ.get("BENCH_EMAIL_EVENTS", "1000"))
# The object-store row: a backlog of this many events written to moto's S3 server.
OBJECT_STORE_EVENTS = int(os.environ.get("BENCH_OBJECT_STORE_EVENTS", "200000"))
COLUMNS = ["app_token", "inserted_at", "internal_event_id", "event_type", "event_name", "user_id", "company_id",
           "anonymous_id", "source", "hostname", "pathname", "screen_width", "screen_height", "device_type", "user_agent",
           "operating_system", "browser", "browser_language", "session", "country_code", "metadata", "message_id",
           "received_at", "origin"]
SERVICES = ["storage", "identity", "ingest", "reporting", "export"]


def log(text):
    print(text, file=sys.stderr, flush=True)


def run(args, check=True, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, check=check, **kwargs)


class Server:
    """One PostgreSQL server for the whole run, as an unprivileged user when we are root."""

    def __init__(self, work):
        self.dir = os.path.join(work, "pg")
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        os.makedirs(self.sock)
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.bin = os.environ.get("CAIRN_PG_BIN") or (binaries[-1] if binaries else "")
        self.as_user = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
            shutil.chown(self.sock, "postgres")
        run(self.as_user + [os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "cairn", "-A", "trust", "-E", "UTF8", "--locale=C"])
        # The embedded default's one setting beyond PostgreSQL's defaults (StackRunner.embeddedSettings).
        self.process = subprocess.Popen(self.as_user + [os.path.join(self.bin, "postgres"), "-D", self.data, "-k", self.sock, "-p", "5432",
                                                        "-c", "listen_addresses=", "-c", "shared_buffers=256MB"],
                                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "server.log"), "w"))
        for _ in range(300):
            if self.psql("postgres", "SELECT 1", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("the bench PostgreSQL did not start:\n" + open(os.path.join(self.dir, "server.log")).read())

    def conninfo(self, database):
        return f"host={self.sock} port=5432 user=cairn dbname={database}"

    def psql(self, database, sql, check=True):
        return run(["psql", self.conninfo(database), "-v", "ON_ERROR_STOP=1", "-Atc", sql], check=check)

    def fresh(self, name):
        self.psql("postgres", f"DROP DATABASE IF EXISTS {name}")
        self.psql("postgres", f"CREATE DATABASE {name}")
        return self.conninfo(name)

    def drop(self, name):
        self.psql("postgres", f"DROP DATABASE IF EXISTS {name}", check=False)

    def resident_kib(self):
        """PostgreSQL's memory: the proportional share (Pss) of every server process, so that
        shared buffers count once, not once per backend."""
        total = 0
        for pid in run(["pgrep", "-f", f"postgres.*{self.sock}|postgres: "], check=False).stdout.split():
            try:
                for line in open(f"/proc/{pid}/smaps_rollup"):
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


class Stack:
    """The release-built stack on a database of the bench server; `ingests` instances of ingest
    (README, "Scale"): `ingest`, then `ingest-2`, …, each with its own spool and HTTP port."""

    def __init__(self, work, name, database, ingests=1, export_settings=None, environment=None):
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.env = dict(os.environ, **(environment or {}), CAIRN_DATA_DIR=os.path.join(self.dir, "var"), CAIRN_DATABASE_URL=database, CAIRN_HTTP_ADDR="127.0.0.1:0", CAIRN_CONSOLE_ADDR="127.0.0.1:0", CAIRN_METRICS_ADDR="127.0.0.1:0")
        self.env.pop("CAIRN_RUN_DIR", None)
        self.log = open(os.path.join(self.dir, "supervisor.log"), "w")
        stack_file = os.path.join(ROOT, "compose", "default.json")
        self.ingests = ["ingest"] + [f"ingest-{n}" for n in range(2, ingests + 1)]
        if ingests > 1 or export_settings:
            stack = json.load(open(stack_file))
            stack["services"] += [{"name": name, "executable": "cairn-ingest", "depends_on": ["storage"]} for name in self.ingests[1:]]
            for service in stack["services"]:
                if service["name"] == "export" and export_settings:
                    service["settings"] = export_settings
            stack_file = os.path.join(self.dir, "stack.json")
            json.dump(stack, open(stack_file, "w"))
        self.supervisor = subprocess.Popen([os.path.join(BIN, "cairn-supervisor"), "--stack", stack_file],
                                           env=self.env, stdout=self.log, stderr=self.log)
        for _ in range(600):
            if '"phase":"running"' in self.cairn("status", "--format", "json", check=False).stdout:
                break
            if self.supervisor.poll() is not None:
                raise RuntimeError("the stack did not start:\n" + open(os.path.join(self.dir, "supervisor.log")).read()[-3000:])
            time.sleep(0.2)
        self.peaks = {}
        self.retention = None
        self.pg_peak = 0

    def cairn(self, *args, check=True):
        return run([os.path.join(BIN, "cairn"), *args], check=check, env=self.env)

    def status(self):
        return json.loads(self.cairn("status", "--format", "json").stdout)

    def pids(self):
        """Service pids by kind: a second ingest instance counts as ingest."""
        return {(s["name"], "ingest" if s["name"] in self.ingests else s["name"]): s["pid"]
                for s in self.status()["services"] if s.get("pid") and (s["name"] in SERVICES or s["name"] in self.ingests)}

    def spool_depth(self):
        """Events waiting in every ingest instance's spool."""
        try:
            return sum(s["status"]["spool_depth"] for s in self.status()["services"] if s["name"] in self.ingests)
        except Exception:
            return 1

    def http_addresses(self):
        services = {s["name"]: s for s in self.status()["services"]}
        return [services[name]["status"]["http_address"] for name in self.ingests]

    def record_peaks(self, server):
        """Each service's peak resident memory (VmHWM) so far, and PostgreSQL's now."""
        for (_, name), pid in self.pids().items():
            try:
                kib = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM:"))
                self.peaks[name] = max(self.peaks.get(name, 0), kib)
            except (OSError, StopIteration):
                pass
        self.pg_peak = max(self.pg_peak, server.resident_kib())

    def stop(self):
        self.supervisor.terminate()
        self.supervisor.wait(timeout=120)


def wait_committed(stack, server, database, expected, sampler):
    """Until ingest's spool is empty and the events table holds `expected` rows: watching the
    spool is cheap, so the database is counted only then (polling count(*) would load it)."""
    settled = None
    while True:
        while stack.spool_depth() != 0:
            sampler()
            time.sleep(0.05)
            settled = None
        count = int(server.psql(database, "SELECT count(*) FROM events").stdout.strip() or 0)
        if count >= expected:
            return
        # An empty spool that stays empty while the count stays short: say so rather than hang.
        settled = settled or time.perf_counter()
        if time.perf_counter() - settled > 30:
            log(f"bench: the spool is empty but {database} holds {count:,} of {expected:,} events; timing stops here")
            return
        time.sleep(0.2)


FOLDED_LAG = """SELECT count(*) FROM events e LEFT JOIN follower_checkpoints c ON c.app_token = e.app_token AND c.follower = 'identity'
                WHERE e.stored_xid > COALESCE(c.after_xid, 0)"""


def wait_caught_up(server, database, sampler):
    """Until the identity follower has folded every stored event: every report then reads its
    rollups alone (before, they add the unfolded tail)."""
    while int(server.psql(database, FOLDED_LAG).stdout.strip() or 1) > 0:
        sampler()
        time.sleep(0.2)


def sampled(stack, server):
    last = [0.0]

    def sample():
        if time.perf_counter() - last[0] >= 1.0:
            last[0] = time.perf_counter()
            stack.record_peaks(server)
    return sample


def object_store_run(work, server, dataset, limit):
    """The S3 destination against moto's server: `limit` events stored first, then a stack with
    the destination started on them; events per second from its start until the last object is
    confirmed (nothing pending)."""
    python = os.path.join(ROOT, ".build", "python-clients", "bin", "python")
    script = os.path.join(ROOT, "Tests", "Clients", "s3_store.py")
    port = 30000 + os.getpid() % 20000
    moto = subprocess.Popen([python, script, "serve", str(port)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        moto.stdout.readline()  # "ready"
        run([python, script, "create", str(port), "lake"])
        records = os.path.join(work, "s3-records.jsonl")
        with open(dataset) as source, open(records, "w") as out:
            for index, line in enumerate(source):
                if index >= limit:
                    break
                out.write(line)
        database = server.fresh("s3bench")
        loader = Stack(work, "s3-load", database)
        loader.cairn("apps", "create", APP)
        new = int(loader.cairn("ingest", records, "--app", APP, "--batch-size", "2000").stdout.split(": ")[1].split()[0])
        wait_committed(loader, server, "s3bench", new, lambda: None)
        loader.stop()
        settings = {"destinations": [{"name": "lake", "app": APP, "type": "s3", "endpoint": f"http://127.0.0.1:{port}", "bucket": "lake",
                                      "format": "segment", "access_key_id": "bench", "secret_access_key": "bench-secret",
                                      "max_object_age_s": 1}]}
        began = time.perf_counter()
        stack = Stack(work, "s3-export", database, export_settings=settings)
        delivered = 0
        while time.perf_counter() - began < 1800:
            rows = json.loads(stack.cairn("export", "status", "--format", "json").stdout or "{}").get("rows", [])
            row = rows[0] if rows else {}
            delivered = row.get("delivered", 0)
            if delivered >= new and row.get("pending", 1) == 0:
                break
            time.sleep(0.5)
        took = time.perf_counter() - began
        objects = len(run([python, script, "read", str(port), "lake"]).stdout.splitlines())
        stack.stop()
        server.drop("s3bench")
        log(f"bench: object store: {new:,} events as {objects} objects to moto in {took:.1f} s ({new / took:,.0f}/s)")
        return {"events": new, "seconds": took, "events_per_s": new / took, "objects": objects}
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def time_retention(stack, drop):
    """The retention job removing every event of the bench app (its window ends after the
    dataset's month, and the 2024 partition holds nothing else): dropped whole, or deleted."""
    stack.cairn("apps", "configure", "--app", APP, "--retention", "23mo")
    began = time.perf_counter()
    result = json.loads(stack.cairn("retention", "run", "--format", "json", *([] if drop else ["--no-drop"])).stdout)
    took = time.perf_counter() - began
    log(f"bench: retention ({'drop' if drop else 'delete'}): {result['events']:,} events in {took:.1f} s "
        f"({', '.join(a['method'] for a in result['apps'])})")
    return {"seconds": took, "events": result["events"], "method": ",".join(a["method"] for a in result["apps"])}


def cli_run(work, server, dataset, index, keep=False, retention=None):
    name = f"cli_{index}"
    database = server.fresh(name)
    stack = Stack(work, name, database)
    stack.cairn("apps", "create", APP)
    stack.cairn("attributes", "set", "--app", APP, "--name", "price", "--type", "number")
    sample = sampled(stack, server)
    began = time.perf_counter()
    result = stack.cairn("ingest", dataset, "--app", APP, "--batch-size", "2000", check=False)
    acknowledged = time.perf_counter() - began
    new = int(result.stdout.split(": ")[1].split()[0])  # "ingested FILE: N new, …"
    wait_committed(stack, server, name, new, sample)
    took = time.perf_counter() - began
    wait_caught_up(server, name, sample)
    folded = time.perf_counter() - began
    stack.record_peaks(server)
    log(f"bench: cli run {index}: {new:,} events committed in {took:.1f} s ({new / took:,.0f}/s; acknowledged in {acknowledged:.1f} s; "
        f"folded by the follower in {folded:.1f} s, {new / folded:,.0f}/s)")
    if keep:
        return new / took, new / acknowledged, new / folded, stack, name, new
    if retention is not None:
        stack.retention = time_retention(stack, drop=retention == "drop")
    stack.stop()
    server.drop(name)
    return new / took, new / acknowledged, new / folded, stack, None, new


def to_copy_text(canonical, out):
    """The canonical JSON lines `cairn export jsonl` writes, as COPY text in COLUMNS order."""
    def escape(value):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").replace("\x00", "")
    rows = 0
    months = set()
    with open(canonical) as source, open(out, "w") as target:
        for line in source:
            event = json.loads(line)
            fields = []
            for column in COLUMNS:
                value = event.get(column)
                if column == "internal_event_id":
                    value = str(int.from_bytes(bytes.fromhex(value), "big", signed=True))
                elif column == "metadata":
                    value = json.dumps(value if value is not None else {}, separators=(",", ":"), ensure_ascii=False)
                elif value is not None:
                    value = str(value)
                fields.append("\\N" if value is None else escape(value))
            target.write("\t".join(fields) + "\n")
            months.add(event["inserted_at"][:7])
            rows += 1
    return rows, sorted(months)


def former_rollup_triggers():
    """The rollup trigger on `events` that the write path ran before events became the log
    (frozen in migrations 8 and 10, dropped by 14), for the comparison row."""
    def blocks(file):
        text = open(os.path.join(ROOT, "Services", "Storage", "Sources", "Migrations", file)).read()
        return [b.replace("\\#u{20}", " ") for b in re.findall(r'#"""\n(.*?)\n\s*"""#', text, re.S)]
    wanted = []
    for block in blocks("0008_Rollups.swift"):
        if block.lstrip().startswith(("CREATE FUNCTION cairn_rollup_begin", "CREATE TRIGGER rollup_events_inserted")):
            wanted.append(block)
    functions = [b for b in blocks("0010_RollupWritePath.swift")
                 if "FUNCTION cairn_rollup_apply_delta()" in b.split("$$")[0] or "FUNCTION cairn_rollup_events_inserted()" in b.split("$$")[0]]
    # The functions before the trigger that calls them.
    return [wanted[0]] + functions + [wanted[1]]


def limit_run(work, server, copy_file, months, index, triggers=True):
    """`psql \\copy` into a fresh database with Cairn's schema (migrated by storage, which also
    creates the month partitions the writer would), the app and its registered attribute."""
    name = f"limit_{index}" if triggers else f"bare_{index}"
    database = server.fresh(name)
    stack = Stack(work, name, database)
    stack.cairn("apps", "create", APP)
    stack.cairn("attributes", "set", "--app", APP, "--name", "price", "--type", "number")
    stack.stop()
    for month in months:
        year, number = int(month[:4]), int(month[5:7])
        following = f"{year + (number == 12)}-{(number % 12) + 1:02d}-01"
        server.psql(name, f"CREATE TABLE IF NOT EXISTS events_y{year}m{number:02d} PARTITION OF events "
                          f"FOR VALUES FROM ('{month}-01 00:00:00+00') TO ('{following} 00:00:00+00')")
    if triggers:
        for statement in former_rollup_triggers():
            server.psql(name, statement)
    began = time.perf_counter()
    result = server.psql(name, f"\\copy events ({', '.join(COLUMNS)}) FROM '{copy_file}'")
    took = time.perf_counter() - began
    rows = int(result.stdout.split()[-1]) if result.stdout.strip() else 0
    log(f"bench: limit run {index}{' (with the former rollup triggers)' if triggers else ''}: {rows:,} rows in {took:.1f} s ({rows / took:,.0f}/s)")
    server.drop(name)
    return rows / took


def http_stack(work, server, name, ingests=1, environment=None):
    """A fresh stack with the bench app; returns it, its database and the app's write key."""
    database = server.fresh(name)
    stack = Stack(work, name, database, ingests=ingests, environment=environment)
    created = stack.cairn("apps", "create", APP).stdout
    key = next(line.split()[-1] for line in created.splitlines() if line.startswith("write key"))
    stack.cairn("attributes", "set", "--app", APP, "--name", "price", "--type", "number")
    return stack, key


def http_bench(files, addresses, key, connections):
    """cairn-http-bench, one process per file, all at once (file i to address i); their summaries."""
    processes = [subprocess.Popen([os.path.join(BIN, "cairn-http-bench"), "--file", file, f"http://{address}", key, str(connections), "100"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for file, address in zip(files, addresses)]
    reports = []
    for process in processes:
        out, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError("cairn-http-bench failed: " + out + err)
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


def http_run(work, server, dataset, index, expected):
    """The same records over HTTP; `expected` is what the CLI run stored of them."""
    name = f"http_{index}"
    stack, key = http_stack(work, server, name)
    sample = sampled(stack, server)
    began = time.perf_counter()
    report = http_bench([dataset], stack.http_addresses(), key, 32)[0]
    if report["failures"]:
        log(f"bench: http run {index}: {report['failures']} requests were not answered 200")
    wait_committed(stack, server, name, expected, sample)
    took = time.perf_counter() - began
    wait_caught_up(server, name, sample)
    folded = time.perf_counter() - began
    stack.record_peaks(server)
    log(f"bench: http run {index}: {expected:,} events committed in {took:.1f} s ({expected / took:,.0f}/s), folded in {folded:.1f} s; "
        f"acknowledged at {report['events_per_s']:,.0f}/s, p50 {report['p50_ms']:.1f} ms, p99 {report['p99_ms']:.1f} ms")
    stack.stop()
    server.drop(name)
    return expected / took, expected / folded, report, stack


def scale_run(work, server, halves, ingests, index):
    """Two HTTP clients of 16 connections each, one per half of the dataset: both to one ingest
    instance, or each to its own (README, "Scale"). Acknowledged and committed rates."""
    name = f"scale{ingests}_{index}"
    stack, key = http_stack(work, server, name, ingests=ingests)
    addresses = stack.http_addresses()
    sample = sampled(stack, server)
    began = time.perf_counter()
    reports = http_bench(halves, [addresses[i % len(addresses)] for i in range(len(halves))], key, 16)
    acknowledged = time.perf_counter() - began
    sent = sum(r["events_sent"] for r in reports)
    failures = sum(r["failures"] for r in reports)
    # Every request has been answered, so an empty spool means every acknowledged event is in.
    wait_committed(stack, server, name, 0, sample)
    took = time.perf_counter() - began
    stored = int(server.psql(name, "SELECT count(*) FROM events").stdout.strip() or 0)
    log(f"bench: scale run {index}, {ingests} ingest: {sent:,} events acknowledged at {sent / acknowledged:,.0f}/s, "
        f"{stored:,} committed at {stored / took:,.0f}/s" + (f"; {failures} requests not answered 200" if failures else ""))
    stack.stop()
    server.drop(name)
    return sent / acknowledged, stored / took, stored


class Receiver:
    """A local webhook receiver for the trigger rows: records when each delivery arrived, by
    the event's messageId, and answers 200 on a kept-alive connection."""

    def __init__(self):
        import http.server
        arrivals = self.arrivals = {}
        lock = self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without this, Nagle's algorithm and the
            # client's delayed ACK hold each answer ~40 ms on a kept-alive connection.
            disable_nagle_algorithm = True

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                try:
                    # The Segment form carries Cairn's own messageId: the bench names events by `ref`.
                    message_id = json.loads(body)["event"]["properties"]["ref"]
                except Exception:
                    message_id = None
                with lock:
                    arrivals.setdefault(message_id, now)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.arrivals)

    def stop(self):
        self.server.shutdown()


def send_pings(stack, key, pings, clock):
    """The trigger rows' light load: `pings` matching events over HTTP, one at a time, 10 a
    second, each named by `properties.ref`; when each was acknowledged, by `clock`."""
    address = stack.http_addresses()[0]
    auth = "Basic " + base64.b64encode((key + ":").encode()).decode()
    acknowledged = {}
    for n in range(pings):
        body = json.dumps({"type": "track", "event": "Bench Ping", "userId": f"pinger-{n % 5}", "messageId": f"ping-{n}",
                           "properties": {"ref": f"ping-{n}"}}).encode()
        request = urllib.request.Request(f"http://{address}/v1/track", data=body, headers={"Content-Type": "application/json", "Authorization": auth})
        urllib.request.urlopen(request, timeout=30).read()
        acknowledged[f"ping-{n}"] = clock()
        time.sleep(0.1)
    return acknowledged


def write_load(work, name, load):
    """The trigger rows' load: `load` events that match `Load *`, named by `properties.ref`."""
    file = os.path.join(work, name)
    with open(file, "w") as out:
        for n in range(load):
            out.write(json.dumps({"type": "track", "event": f"Load {n % 7}", "userId": f"user-{n % 997}", "messageId": f"load-{n}",
                                  "properties": {"ref": f"load-{n}"},
                                  "timestamp": f"2024-05-01T{(n // 3600) % 24:02d}:{(n // 60) % 60:02d}:{n % 60:02d}Z"}) + "\n")
    return file


def trigger_run(work, server, pings, load):
    """The trigger rows: the delay from acknowledgement to delivery under a light load (one event
    at a time, 10 a second: an upper bound on the delay from commit), then deliveries per
    second while `load` matching events are stored."""
    name = "triggers"
    stack, key = http_stack(work, server, name)
    receiver = Receiver()
    stack.cairn("triggers", "add", "--app", APP, "--name", "ping", "--event", "Bench Ping", "--url", receiver.url)
    time.sleep(1.5)  # the export service picks new triggers up within a second
    acknowledged = send_pings(stack, key, pings, time.perf_counter)
    deadline = time.perf_counter() + 60
    while receiver.count() < pings and time.perf_counter() < deadline:
        time.sleep(0.05)
    delays = sorted((receiver.arrivals[m] - t) * 1000 for m, t in acknowledged.items() if m in receiver.arrivals)
    # Throughput: every Load event of a generated file matches.
    stack.cairn("triggers", "add", "--app", APP, "--name", "load", "--event", "Load *", "--url", receiver.url)
    time.sleep(1.5)
    file = write_load(work, "trigger-load.jsonl", load)
    stack.cairn("ingest", file, "--app", APP)
    began = None
    deadline = time.perf_counter() + 600
    while time.perf_counter() < deadline:
        loads = [t for m, t in list(receiver.arrivals.items()) if m and m.startswith("load-")]
        if len(loads) >= load:
            break
        time.sleep(0.1)
    loads = sorted(t for m, t in receiver.arrivals.items() if m and m.startswith("load-"))
    rate = (len(loads) - 1) / (loads[-1] - loads[0]) if len(loads) > 1 else 0
    status = stack.cairn("triggers", "status", "--format", "json").stdout
    receiver.stop()
    stack.stop()
    server.drop(name)
    os.remove(file)
    result = {"pings": pings, "delivered_pings": len(delays),
              "delay_p50_ms": statistics.median(delays) if delays else None,
              "delay_p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else None,
              "load_events": load, "load_delivered": len(loads), "deliveries_per_s": rate, "status": json.loads(status)}
    log(f"bench: triggers: delay p50 {result['delay_p50_ms'] or 0:.0f} ms, p99 {result['delay_p99_ms'] or 0:.0f} ms over {len(delays)} pings; "
        f"{len(loads):,} of {load:,} load deliveries at {rate:,.0f}/s")
    return result


def email_trigger_run(work, pings, load, server):
    """The e-mail trigger rows, as the webhook's: the delay from acknowledgement to the message
    being stored by a local SMTP server (aiosmtpd, STARTTLS and AUTH required), one event at a
    time, then messages per second while `load` matching events are stored."""
    python = os.path.join(ROOT, ".build", "python-clients", "bin", "python")
    directory = os.path.join(work, "smtp")
    os.makedirs(directory)
    sink = subprocess.Popen([python, os.path.join(ROOT, "Tests", "Clients", "smtp_sink.py"), directory, "bench", "bench-secret", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = "email"
    try:
        deadline = time.perf_counter() + 30
        while not os.path.exists(os.path.join(directory, "port")) and time.perf_counter() < deadline:
            time.sleep(0.05)
        port = open(os.path.join(directory, "port")).read().strip()
        environment = {"CAIRN_SMTP_HOST": "localhost", "CAIRN_SMTP_PORT": port, "CAIRN_SMTP_SECURITY": "starttls",
                       "CAIRN_SMTP_CA_FILE": os.path.join(directory, "cert.pem"), "CAIRN_SMTP_FROM": "bench@example.com",
                       "CAIRN_SMTP_USERNAME": "bench", "CAIRN_SMTP_PASSWORD": "bench-secret"}
        stack, key = http_stack(work, server, name, environment=environment)
        messages = os.path.join(directory, "messages.jsonl")

        def arrivals(prefix):
            """When the server stored each message whose subject names a `ref` with this prefix (wall clock)."""
            found = {}
            if os.path.exists(messages):
                for line in open(messages):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue  # a line being written
                    ref = record["subject"].removeprefix("Ref ")
                    if ref.startswith(prefix):
                        found.setdefault(ref, record["received_at"])
            return found

        mail = ["--email-to", "reader@example.com", "--email-subject", "Ref {{event.attributes.ref}}", "--email-text", "Event {{event.name}}"]
        stack.cairn("triggers", "add", "--app", APP, "--name", "ping", "--event", "Bench Ping", *mail)
        time.sleep(1.5)
        # The server records wall-clock times: the pings are stamped the same way.
        acknowledged = send_pings(stack, key, pings, time.time)
        deadline = time.perf_counter() + 60
        while len(arrivals("ping-")) < pings and time.perf_counter() < deadline:
            time.sleep(0.1)
        stored = arrivals("ping-")
        delays = sorted((stored[m] - t) * 1000 for m, t in acknowledged.items() if m in stored)
        stack.cairn("triggers", "add", "--app", APP, "--name", "load", "--event", "Load *", *mail)
        time.sleep(1.5)
        file = write_load(work, "email-load.jsonl", load)
        stack.cairn("ingest", file, "--app", APP)
        deadline = time.perf_counter() + 900
        while len(arrivals("load-")) < load and time.perf_counter() < deadline:
            time.sleep(0.5)
        loads = sorted(arrivals("load-").values())
        rate = (len(loads) - 1) / (loads[-1] - loads[0]) if len(loads) > 1 else 0
        stack.stop()
        server.drop(name)
        os.remove(file)
    finally:
        sink.terminate()
        sink.wait(timeout=30)
    result = {"pings": pings, "delivered_pings": len(delays),
              "delay_p50_ms": statistics.median(delays) if delays else None,
              "delay_p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else None,
              "load_events": load, "load_delivered": len(loads), "messages_per_s": rate}
    log(f"bench: e-mail triggers: delay p50 {result['delay_p50_ms'] or 0:.0f} ms, p99 {result['delay_p99_ms'] or 0:.0f} ms over {len(delays)} pings; "
        f"{len(loads):,} of {load:,} load messages at {rate:,.1f}/s")
    return result


def time_reports(stack):
    """Each report's p50 of 5 on the bench app, in milliseconds."""
    p50 = {}
    for name, args, target in REPORTS:
        times = []
        for _ in range(5):
            began = time.perf_counter()
            stack.cairn(*args, "--app", APP, "--format", "json")
            times.append(time.perf_counter() - began)
        p50[name] = (statistics.median(times) * 1000, target)
    return p50


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


CONSOLE_PAGES = [
    ("overview", ""), ("events", ""), ("events by day", "&by=day"),
    ("funnel", "&step=Guide+Started&step=Guide+Completed&within=7d"),
    ("retention", "&start-event=Purchased&return-event=Purchased&by=week&periods=4"), ("sessions", ""),
    ("engagement", "&entity=flow"), ("people", "&did=Purchased&times=%3E2"), ("companies", ""), ("pipeline", ""),
]


def time_api_and_console(stack):
    """Each report over the HTTP API (p50 of 5, with the read key) and each console page
    (p50 of 5, logged in, with the period the page opens with: the 30 days up to the newest
    event, or all time for companies and engagement)."""
    key = stack.cairn("apps", "rotate-key", "--app", APP, "--read").stdout.split()[-1]
    base = "http://" + next(s for s in stack.status()["services"] if s["name"] == "reporting")["status"]["http_address"]
    api = {}
    for name, args, target in REPORTS:
        query, index = [], 2
        while index + 1 < len(args):
            query.append((args[index][2:], args[index + 1]))
            index += 2
        url = f"{base}/api/v1/apps/{APP}/reports/{args[1]}?" + urllib.parse.urlencode(query)
        times = []
        for _ in range(5):
            began = time.perf_counter()
            urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": "Bearer " + key}), timeout=600).read()
            times.append(time.perf_counter() - began)
        api[name] = (statistics.median(times) * 1000, target)
    opener = urllib.request.build_opener(NoRedirect)
    def fetch(path, data=None, cookie=None):
        request = urllib.request.Request(base + path, data=data, headers={"Cookie": cookie} if cookie else {})
        try:
            response = opener.open(request, timeout=600)
            response.read()
            return response
        except urllib.error.HTTPError as redirect:
            return redirect
    login = fetch("/login", data=urllib.parse.urlencode({"key": key, "next": ""}).encode())
    cookie = login.headers["Set-Cookie"].split(";")[0]
    pages = {}
    for name, extra in CONSOLE_PAGES:
        # The page as its navigation link opens it: its own default period (a redirect), then the form's fields.
        page = f"/apps/{APP}/{name.split()[0]}"
        location = fetch(page, cookie=cookie).headers.get("Location")
        path = (location or page + "?") + extra
        times = []
        for _ in range(5):
            began = time.perf_counter()
            status = fetch(path, cookie=cookie).status
            times.append(time.perf_counter() - began)
            if status != 200:
                raise RuntimeError(f"console page {path} answered {status}")
        pages[name] = statistics.median(times) * 1000
    log("bench: report API p50: " + ", ".join(f"{k} {v[0]:.0f} ms" for k, v in api.items()))
    log("bench: console pages p50: " + ", ".join(f"{k} {v:.0f} ms" for k, v in pages.items()))
    return api, pages


def open_loop_run(stack, server, database, dataset, rate, seconds):
    """A second app's records over HTTP at a fixed `rate` (open loop) for `seconds`, on the stack
    that holds the bench app's events: acknowledgement latency from each request's scheduled
    start, the identity follower's lag sampled twice a second, and every report of the bench
    app timed while this load runs."""
    created = stack.cairn("apps", "create", "live").stdout
    key = next(line.split()[-1] for line in created.splitlines() if line.startswith("write key"))
    token = server.psql(database, "SELECT token FROM apps WHERE name = 'live'").stdout.strip()
    lag_sql = f"""SELECT COALESCE(extract(epoch FROM now() - min(e.received_at)), 0) FROM events e
                  WHERE e.app_token = '{token}' AND e.stored_xid > COALESCE(
                      (SELECT after_xid FROM follower_checkpoints WHERE app_token = '{token}' AND follower = 'identity'), 0)"""
    lags, done = [], threading.Event()

    def sample_lag():
        while not done.is_set():
            try:
                lags.append(float(server.psql(database, lag_sql).stdout.strip() or 0))
            except Exception:
                pass
            done.wait(0.5)
    sampler = threading.Thread(target=sample_lag)
    sampler.start()
    loaded = {}
    reporter = threading.Thread(target=lambda: loaded.update(time_reports(stack)))
    process = subprocess.Popen([os.path.join(BIN, "cairn-http-bench"), "--rate", str(rate), "--seconds", str(seconds), "--file", dataset,
                                f"http://{stack.http_addresses()[0]}", key, "256", "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(min(5, seconds / 4))  # reports once the load is steady
    reporter.start()
    out, err = process.communicate()
    reporter.join()
    while stack.spool_depth() != 0:
        time.sleep(0.1)
    wait_caught_up(server, database, lambda: None)
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError("cairn-http-bench failed: " + out + err)
    report = json.loads(out.strip().splitlines()[-1])
    lags.sort()
    lag_p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0
    log(f"bench: open loop at {rate:,.0f} events/s for {seconds} s: acknowledged p50 {report['p50_ms']:.1f} ms, p99 {report['p99_ms']:.1f} ms, "
        f"{report['failures']} failures; follower lag p99 {lag_p99:.2f} s over {len(lags)} samples")
    return report, lag_p99, loaded


def split_dataset(dataset, work, limit):
    """The first `limit` records in two halves (alternate lines), for the scale row."""
    halves = [os.path.join(work, f"half{n}.jsonl") for n in (1, 2)]
    with open(dataset) as source, open(halves[0], "w") as first, open(halves[1], "w") as second:
        for number, line in enumerate(source):
            if number >= limit:
                break
            (first if number % 2 == 0 else second).write(line)
    return halves


REPORTS = [
    ("events", ["report", "events"], 100),
    ("uniques", ["report", "uniques", "--by", "day"], 100),
    ("stats", ["report", "stats", "--event", "Purchased", "--attr", "price"], 100),
    ("engagement", ["report", "engagement", "--entity", "flow"], 100),
    ("companies", ["report", "companies", "--top", "20"], 100),
    ("users", ["report", "users", "--did", "Purchased", "--times", ">2", "--limit", "100"], 1000),
    ("funnel", ["report", "funnel", "--step", "Guide Started", "--step", "Guide Completed", "--within", "7d"], 1000),
    ("retention", ["report", "retention", "--start-event", "Purchased", "--return-event", "Purchased", "--by", "week", "--periods", "4"], 1000),
    ("sessions", ["report", "sessions"], 1000),
]


def main():
    work = tempfile.mkdtemp(prefix="cairn-bench-")
    os.chmod(work, 0o755)
    rows = []   # (figure, value text, ratio text, target text, result)
    data = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "events": EVENTS, "runs": RUNS,
            "machine": {"cores": os.cpu_count()}}
    server = None
    try:
        dataset = os.path.join(work, "events.jsonl")
        log(f"bench: generating {EVENTS:,} events in every format")
        run([sys.executable, os.path.join(ROOT, "bench", "generate.py"), str(EVENTS), dataset, "--app", APP, "--formats", "all"])
        server = Server(work)

        # cli, first run kept for the reports, the export and the canonical rows.
        cli_rates, ack_rates = [], []
        folded_rates = []
        rate, ack, folded, first, first_db, stored = cli_run(work, server, dataset, 1, keep=True)
        cli_rates.append(rate)
        ack_rates.append(ack)
        folded_rates.append(folded)
        peaks = dict(first.peaks)
        pg_peak = first.pg_peak

        report_p50 = time_reports(first)
        api_p50, page_p50 = time_api_and_console(first)
        # Open loop at half the sustained committed rate, with the bench app's reports timed meanwhile.
        open_rate = max(100, round(rate / 2 / 100) * 100)
        open_report, lag_p99, loaded_p50 = open_loop_run(first, server, first_db, dataset, open_rate, OPEN_SECONDS)
        first.record_peaks(server)
        out = os.path.join(work, "segment")
        began = time.perf_counter()
        exported = int(first.cairn("export", "segment", "--app", APP, "--out", out).stdout.split()[1])
        export_rate = exported / (time.perf_counter() - began)
        shutil.rmtree(out, ignore_errors=True)
        canonical = os.path.join(work, "canonical.jsonl")
        first.cairn("export", "jsonl", "--app", APP, "--out", canonical)
        first.record_peaks(server)
        for name, kib in first.peaks.items():
            peaks[name] = max(peaks.get(name, 0), kib)
        first.stop()
        server.drop(first_db)

        copy_file = os.path.join(work, "canonical.copy")
        copied, months = to_copy_text(canonical, copy_file)
        os.chmod(copy_file, 0o644)
        os.remove(canonical)
        limit_rates = [limit_run(work, server, copy_file, months, index) for index in range(1, RUNS + 1)]
        bare_rates = [limit_run(work, server, copy_file, months, index, triggers=False) for index in range(1, RUNS + 1)]

        # Runs 2 and 3 end with the retention job removing their million events: app by app, then dropped whole.
        retention = {}
        for index in range(2, RUNS + 1):
            method = {2: "delete", 3: "drop"}.get(index)
            rate, ack, folded, stack, _, _ = cli_run(work, server, dataset, index, retention=method)
            if method:
                retention[method] = stack.retention
            cli_rates.append(rate)
            ack_rates.append(ack)
            folded_rates.append(folded)
            for name, kib in stack.peaks.items():
                peaks[name] = max(peaks.get(name, 0), kib)
            pg_peak = max(pg_peak, stack.pg_peak)

        http_rates, http_folded_rates, http_reports = [], [], []
        for index in range(1, RUNS + 1):
            rate, folded, report, stack = http_run(work, server, dataset, index, stored)
            http_rates.append(rate)
            http_folded_rates.append(folded)
            http_reports.append(report)
            for name, kib in stack.peaks.items():
                peaks[name] = max(peaks.get(name, 0), kib)
            pg_peak = max(pg_peak, stack.pg_peak)

        # Scale: one ingest against two, the same two clients and records, runs interleaved.
        halves = split_dataset(dataset, work, min(EVENTS, SCALE_EVENTS))
        scale = {1: [], 2: []}
        for index in range(1, RUNS + 1):
            for ingests in (1, 2):
                scale[ingests].append(scale_run(work, server, halves, ingests, index))
        for half in halves:
            os.remove(half)

        triggers = trigger_run(work, server, TRIGGER_PINGS, min(EVENTS, TRIGGER_LOAD))
        email = email_trigger_run(work, TRIGGER_PINGS, min(EVENTS, EMAIL_LOAD), server)
        object_store = object_store_run(work, server, dataset, min(EVENTS, OBJECT_STORE_EVENTS))
        log("bench: the idle stack's CPU over 60 s")
        idle_cpu = idle.measure(60)

        formats_file, identity_file = os.path.join(work, "formats.json"), os.path.join(work, "identity.json")
        run([os.path.join(BIN, "cairn-format-bench")], env=dict(os.environ, BENCH_FORMAT_JSON=formats_file))
        run([os.path.join(BIN, "cairn-identity-bench")], env=dict(os.environ, BENCH_IDENTITY_JSON=identity_file))
        formats = open(formats_file).read()
        identity = open(identity_file).read()

        # The limit is the bare copy into the events table with its indexes and no trigger: the
        # log's own cost. The copy with the former write path's rollup trigger is for comparison.
        limit = statistics.median(bare_rates)
        former = statistics.median(limit_rates)
        cli = statistics.median(cli_rates)
        cli_folded = statistics.median(folded_rates)
        http = statistics.median(http_rates)
        http_folded = statistics.median(http_folded_rates)
        http_report = sorted(http_reports, key=lambda r: r["events_per_s"])[len(http_reports) // 2]

        def add(figure, value, ratio, target, met):
            rows.append((figure, value, ratio, target, "-" if met is None else ("met" if met else "MISSED")))

        add("limit: psql \\copy of the canonical rows (indexes, no trigger)", f"{limit:,.0f} rows/s", "1.00", "-", None)
        add("  the same with the former rollup trigger", f"{former:,.0f} rows/s", f"{former / limit:.2f}", "-", None)
        add("cli: cairn ingest until committed", f"{cli:,.0f} events/s", f"{cli / limit:.2f}", "≥ 0.5 × limit", cli / limit >= 0.5)
        add("cli: until every report reflects the last event", f"{cli_folded:,.0f} events/s", f"{cli_folded / limit:.2f}", "≥ 0.4 × limit",
            cli_folded / limit >= 0.4)
        add("cli: acknowledged", f"{statistics.median(ack_rates):,.0f} events/s", "-", "-", None)
        add("http: 32 connections × 100 until committed", f"{http:,.0f} events/s", f"{http / limit:.2f}", "≥ 0.8 × cli",
            http >= 0.8 * cli)
        add("http: until every report reflects the last event", f"{http_folded:,.0f} events/s", f"{http_folded / limit:.2f}",
            "≥ 0.8 × cli", http_folded >= 0.8 * cli_folded)
        add("http: acknowledged (closed loop)", f"{http_report['events_per_s']:,.0f} events/s", "-", "-", None)
        add("http: acknowledgement p50 / p99 (closed loop)", f"{http_report['p50_ms']:.1f} / {http_report['p99_ms']:.1f} ms", "-", "-", None)
        add(f"http: open loop at {open_rate:,} events/s (half of cli), ack p50 / p99", f"{open_report['p50_ms']:.1f} / {open_report['p99_ms']:.1f} ms",
            "-", "p99 < 50 ms", open_report["p99_ms"] < 50 and open_report["failures"] == 0)
        add("follower lag at that rate, p99", f"{lag_p99:.2f} s", "-", "p99 < 2 s", lag_p99 < 2)
        one_ack, one_committed = (statistics.median(r[i] for r in scale[1]) for i in (0, 1))
        two_ack, two_committed = (statistics.median(r[i] for r in scale[2]) for i in (0, 1))
        add("scale: 2 clients → 1 ingest, acknowledged", f"{one_ack:,.0f} events/s", "-", "-", None)
        add("scale: 2 clients → 2 ingests, acknowledged", f"{two_ack:,.0f} events/s (×{two_ack / one_ack:.2f})", "-", "rises", two_ack > one_ack)
        add("scale: committed, 1 ingest → 2 ingests", f"{one_committed:,.0f} → {two_committed:,.0f} events/s",
            f"{two_committed / limit:.2f}", "-", None)
        if triggers["delay_p50_ms"] is not None:
            add("triggers: acknowledged → webhook, p50 / p99 (light load)", f"{triggers['delay_p50_ms']:.0f} / {triggers['delay_p99_ms']:.0f} ms",
                "-", "p50 < 2,000 ms", triggers["delay_p50_ms"] < 2000)
        add("triggers: deliveries to a local receiver", f"{triggers['deliveries_per_s']:,.0f} /s", "-", "-", None)
        if email["delay_p50_ms"] is not None:
            add("e-mail triggers: acknowledged → stored by SMTP, p50 / p99", f"{email['delay_p50_ms']:.0f} / {email['delay_p99_ms']:.0f} ms",
                "-", "-", None)
        add("e-mail triggers: messages to a local SMTP server (STARTTLS, AUTH)", f"{email['messages_per_s']:,.1f} /s", "-", "-", None)
        identity_figures = json.loads(identity)
        add("identity: resolver, warm state, one core", f"{identity_figures['events_per_s']:,.0f} events/s", "-", "≥ 200,000",
            identity_figures["events_per_s"] >= 200_000)
        add("identity: state for 1,000,000 users", f"{identity_figures['state_mb']:.0f} MB", "-", "< 300 MB", identity_figures["state_mb"] < 300)
        format_figures = json.loads(formats)
        for name, value in format_figures.items():
            target = 150_000 if name in ("userpilot", "segment") else None
            add(f"formats: {name}, one core", f"{value:,.0f} events/s", "-", f"≥ {target:,}" if target else "-",
                value >= target if target else None)
        for name, (p50, target) in report_p50.items():
            add(f"report {name}: p50 of 5", f"{p50:.0f} ms", "-", f"≤ {target:,} ms", p50 <= target)
        for name, (p50, target) in loaded_p50.items():
            add(f"report {name}: p50 of 5, while ingesting", f"{p50:.0f} ms", "-", f"≤ {target:,} ms", p50 <= target)
        for name, (p50, target) in api_p50.items():
            add(f"report API {name}: p50 of 5 over HTTP", f"{p50:.0f} ms", "-", f"≤ {target:,} ms", p50 <= target)
        for name, p50 in page_p50.items():
            add(f"console page {name}: p50 of 5", f"{p50:.0f} ms", "-", "≤ 150 ms", p50 <= 150)
        add("idle: whole stack's CPU over 60 s (embedded default)", f"{idle_cpu['cpu_seconds']:.2f} s ({idle_cpu['percent_of_one_core']:.2f}% of a core)",
            "-", "< 1% of a core", idle_cpu["percent_of_one_core"] < 1)
        add(f"object store: {object_store['events']:,} events to moto (S3), segment format", f"{object_store['events_per_s']:,.0f} events/s",
            "-", "-", None)
        for method, figure in retention.items():
            add(f"retention: remove {figure['events']:,} events ({'drop the partition' if method == 'drop' else 'delete app by app'})",
                f"{figure['seconds']:.1f} s", "-", "-", None)
        add("export: to Segment batch files", f"{export_rate:,.0f} events/s", "-", "≥ 100,000", export_rate >= 100_000)
        for name in SERVICES:
            kib = peaks.get(name, 0)
            add(f"peak resident: {name}", f"{kib / 1024:.0f} MB", "-", "< 300 MB", kib < 300 * 1024)
        add("peak resident: PostgreSQL (all processes, Pss)", f"{pg_peak / 1024:.0f} MB", "-", "-", None)

        data.update({"limit_rows_per_s": bare_rates, "limit_with_former_rollup_trigger_rows_per_s": limit_rates, "cli_events_per_s": cli_rates,
                     "cli_folded_events_per_s": folded_rates, "cli_acknowledged_per_s": ack_rates,
                     "http_events_per_s": http_rates, "http_folded_events_per_s": http_folded_rates,
                     "open_loop": {"rate": open_rate, "seconds": OPEN_SECONDS, "report": open_report, "follower_lag_p99_s": lag_p99},
                     "reports_while_ingesting_p50_ms": {k: v[0] for k, v in loaded_p50.items()}, "http_runs": http_reports, "identity": identity_figures, "formats": format_figures,
                     "reports_p50_ms": {k: v[0] for k, v in report_p50.items()}, "export_events_per_s": export_rate,
                     "report_api_p50_ms": {k: v[0] for k, v in api_p50.items()}, "console_pages_p50_ms": page_p50,
                     "peak_resident_mb": {k: v / 1024 for k, v in peaks.items()}, "postgres_peak_pss_mb": pg_peak / 1024,
                     "canonical_rows": copied, "triggers": triggers, "email_triggers": email, "idle_cpu": idle_cpu, "retention": retention, "object_store": object_store,
                     "scale": {"records": min(EVENTS, SCALE_EVENTS),
                               "one_ingest": [dict(zip(["acknowledged_per_s", "committed_per_s", "stored"], r)) for r in scale[1]],
                               "two_ingests": [dict(zip(["acknowledged_per_s", "committed_per_s", "stored"], r)) for r in scale[2]]},
                     "table": [dict(zip(["figure", "value", "ratio_to_limit", "target", "result"], row)) for row in rows]})
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)

    widths = [max(len(str(row[i])) for row in rows + [("figure", "value", "/ limit", "target", "result")]) for i in range(5)]
    header = ("figure", "value", "/ limit", "target", "result")
    print(f"\nmake bench: {EVENTS:,} events, median of {RUNS} runs, {data['date']}")
    for row in [header] + rows:
        print("  ".join(str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i]) for i, cell in enumerate(row)))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(ROOT, "bench", "results", data["date"][:10] + ".json")
    json.dump(data, open(path, "w"), indent=1)
    print(f"\nwritten to {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
