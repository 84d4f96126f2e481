#!/usr/bin/env python3
"""The idle CPU of the whole stack: `make run`'s embedded default, release build, no traffic.

Starts the supervisor on a fresh data directory, lets it settle, then sums the CPU time
(user + system, from /proc) of the supervisor and every process under it (the five services
and the embedded PostgreSQL) over SECONDS. Prints one JSON object; `bench.py` adds it to its
table, and it runs alone as `python3 bench/idle.py [SECONDS]`.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CAIRN_BIN", os.path.join(ROOT, ".build", "release"))
TICKS = os.sysconf("SC_CLK_TCK")


def descendants(root):
    """Every process under `root`, `root` included: pid -> (name, cpu ticks)."""
    stats, children = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        stats[int(pid)] = (stat[stat.index("(") + 1:stat.rindex(")")], int(fields[11]) + int(fields[12]))
        children.setdefault(int(fields[1]), []).append(int(pid))
    found, queue = {}, [root]
    while queue:
        pid = queue.pop()
        if pid in stats:
            found[pid] = stats[pid]
            queue += children.get(pid, [])
    return found


def measure(seconds=60, settle=10):
    work = tempfile.mkdtemp(prefix="cairn-idle-")
    os.chmod(work, 0o755)
    env = dict(os.environ, CAIRN_DATA_DIR=os.path.join(work, "var"), CAIRN_RUN_DIR=os.path.join(work, "run"),
               CAIRN_HTTP_ADDR="127.0.0.1:0", CAIRN_CONSOLE_ADDR="127.0.0.1:0", CAIRN_METRICS_ADDR="127.0.0.1:0")
    env.pop("CAIRN_DATABASE_URL", None)
    log = open(os.path.join(work, "supervisor.log"), "w")
    supervisor = subprocess.Popen([os.path.join(BIN, "cairn-supervisor"), "--stack", os.path.join(ROOT, "compose", "default.json")],
                                  env=env, stdout=log, stderr=log)
    try:
        for _ in range(600):
            status = subprocess.run([os.path.join(BIN, "cairn"), "status", "--format", "json"], env=env, capture_output=True, text=True)
            if '"phase":"running"' in status.stdout:
                break
            if supervisor.poll() is not None:
                raise RuntimeError("the stack did not start:\n" + open(os.path.join(work, "supervisor.log")).read()[-3000:])
            time.sleep(0.2)
        time.sleep(settle)
        before = descendants(supervisor.pid)
        began = time.monotonic()
        time.sleep(seconds)
        after = descendants(supervisor.pid)
        elapsed = time.monotonic() - began
        per_name = {}
        for pid, (name, ticks) in after.items():
            used = ticks - before.get(pid, (name, 0))[1]
            key = "postgres" if name.startswith("postgres") else name
            per_name[key] = per_name.get(key, 0) + used / TICKS
        total = sum(per_name.values())
        return {"seconds": round(elapsed, 1), "cpu_seconds": round(total, 3), "percent_of_one_core": round(100 * total / elapsed, 2),
                "by_process": {k: round(v, 3) for k, v in sorted(per_name.items())}}
    finally:
        supervisor.terminate()
        try:
            supervisor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 60), indent=1))
