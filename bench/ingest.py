"""Ingest benchmark: the hub against a minimal Flask app on the same stack, in the same run.

Both run under gunicorn on PostgreSQL + Redis and take the same load from wrk (16 connections):
signed website webhooks, each unique. The minimal app only verifies the HMAC, INSERTs and
enqueues; the hub does its whole receive path while one `hub worker` drains concurrently.
Prints requests/s, p50 and p99 latency of each and the ratio, the web processes' CPU time per
request (steadier than req/s on a shared machine), and the hub's accept-to-processed lag.

    .venv/bin/python bench/ingest.py [--duration 10] [--rounds 2] [--web-workers 2] [--threads 8]

Needs PostgreSQL and Redis (BENCH_DATABASE_URL, BENCH_REDIS_URL) and wrk (apt-get install wrk).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub import migrate, signing  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secret-32byte").decode()
PG = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/tributary_bench")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
WRK_SCRIPT = r"""
local lines = {}
local step, n = 1, 0
function setup(thread)
  thread:set("offset", counter); counter = counter + 1
end
counter = 0
function init(args)
  step = tonumber(args[2]); offset = offset or 0
  for line in io.lines(args[1]) do
    local id, ts, sig, body = line:match("([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)")
    lines[#lines + 1] = {id, ts, sig, body}
  end
  n = offset
end
function request()
  n = n + step
  local r = lines[(n % #lines) + 1]
  return wrk.format("POST", "/webhooks/website", {
    ["content-type"] = "application/json", ["webhook-id"] = r[1],
    ["webhook-timestamp"] = r[2], ["webhook-signature"] = r[3]}, r[4])
end
"""


def fresh_database(url: str):
    """Drop and create the database of ``url``, migrate it to head; return an engine on it."""
    admin_url, name = url.rsplit("/", 1)
    admin = create_engine(admin_url + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    engine = create_engine(url)
    migrate.upgrade(engine)
    return engine


def reset_database() -> None:
    """A fresh bench database, with the minimal app's own inbox table."""
    engine = fresh_database(PG)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE minimal_inbox (id BIGSERIAL PRIMARY KEY, key TEXT UNIQUE, "
                                "body BYTEA, received_at TIMESTAMPTZ DEFAULT now())"))
    engine.dispose()
    import redis

    redis.Redis.from_url(REDIS).flushdb()


def write_requests(path: Path, count: int) -> None:
    """Pre-signed unique requests, one per line: id, timestamp, signature, body."""
    now = int(time.time())
    with path.open("w") as out:
        for i in range(count):
            msg_id = f"msg_{uuid.uuid4().hex}"
            body = json.dumps({"events": [{"id": msg_id, "type": "page.viewed", "anonymous_id": f"a{i % 5000}",
                                           "timestamp": "2026-11-23T10:00:00Z",
                                           "properties": {"url": f"https://shop.example.com/p/{i}"}}]})
            out.write(f"{msg_id}\t{now}\t{signing.sign(SECRET, msg_id, now, body.encode())}\t{body}\n")


def wait_healthy(url: str, process: subprocess.Popen) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def run_wrk(port: int, script: Path, data: Path, duration: int, connections: int, extra: str | None = None) -> dict:
    """Run wrk with a Lua ``script`` given ``data`` (and ``extra``, else the thread count) as arguments."""
    threads = 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}", "--", str(data), extra or str(threads)],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": latency["50"], "p99": latency["99"], "non2xx": int(errors.group(1)) if errors else 0}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by the live process ``pid`` and its descendants."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return total
    return total + sum(cpu_seconds(int(child)) for child in children)


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="per web worker (gthread), for every server")
    parser.add_argument("--no-worker", action="store_true", help="measure the hub's receiver alone")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    reset_database()
    work = Path(tempfile.mkdtemp(prefix="tributary-bench-"))
    data, script = work / "requests.tsv", work / "post.lua"
    write_requests(data, 200_000)
    script.write_text(WRK_SCRIPT)
    config = work / "hub.yaml"
    config.write_text(f"connectors: {{website: {{enabled: true, webhook_secret: '{SECRET}'}}}}\n")
    env = {**os.environ, "HUB_CONFIG": str(config), "HUB_DATABASE_URL": PG, "HUB_REDIS_URL": REDIS,
           "BENCH_DATABASE_URL": PG, "BENCH_REDIS_URL": REDIS, "BENCH_SECRET": SECRET,
           "PYTHONPATH": str(ROOT)}
    gunicorn = ["--workers", str(args.web_workers), "--threads", str(args.threads),
                *(["--worker-class", "gthread"] if args.threads > 1 else [])]
    servers = {
        "hello": [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:8100", *gunicorn, "bench.minimal_app:hello"],
        "minimal": [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:8101", *gunicorn, "bench.minimal_app:app"],
        "hub": [sys.executable, "-m", "hub", "serve", "--port", "8102", "--workers", str(args.web_workers),
                "--threads", str(args.threads)],
    }
    runs: dict[str, list[dict]] = {name: [] for name in servers}
    lags = []
    for _ in range(args.rounds):
        for index, (name, command) in enumerate(servers.items()):
            port = 8100 + index
            truncate()
            server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            worker = None
            try:
                wait_healthy(f"http://127.0.0.1:{port}/healthz", server)
                if name == "hub" and not args.no_worker:
                    worker = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env, cwd=ROOT,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    wait_worker_ready(worker)
                run_wrk(port, script, data, 2, args.connections)  # warm-up
                web_cpu, worker_cpu = cpu_seconds(server.pid), worker and cpu_seconds(worker.pid)
                processed_before, last_warm_up_id = processed_rows(), max_inbox_id()
                result = run_wrk(port, script, data, args.duration, args.connections)
                requests_served = result["rps"] * args.duration
                result["web_cpu_ms"] = (cpu_seconds(server.pid) - web_cpu) * 1000 / requests_served
                runs[name].append(result)
                if worker:
                    lags.append(wait_drained(after_id=last_warm_up_id))
                    lags[-1]["worker_cpu_ms"] = ((cpu_seconds(worker.pid) - worker_cpu) * 1000
                                                 / (processed_rows() - processed_before))
            finally:
                for process in (worker, server):
                    if process:
                        process.terminate()
                        process.wait(timeout=30)
    best = {name: max(results, key=lambda r: r["rps"]) for name, results in runs.items()}
    print(f"{args.rounds} rounds of {args.duration} s, {args.connections} connections, "
          f"{args.web_workers} web workers x {args.threads} threads; best round of each:")
    print(f"{'':10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}{'CPU ms/req':>12}   all rounds req/s")
    for name, r in best.items():
        every = ", ".join(f"{x['rps']:.0f}" for x in runs[name])
        print(f"{name:10}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['non2xx']:>10}"
              f"{r['web_cpu_ms']:>12.3f}   {every}")
    print(f"ratio hub/minimal: {best['hub']['rps'] / best['minimal']['rps']:.2f}x throughput "
          f"(hello = Flask answering without any work: the ceiling of the web stack here)")
    for lag in lags:
        print(f"hub accept-to-processed lag: p50 {lag['p50']:.3f} s, p99 {lag['p99']:.3f} s, "
              f"max {lag['max']:.3f} s over {lag['rows']} rows; drained {lag['drain_after']:.1f} s after the load; "
              f"worker CPU {lag['worker_cpu_ms']:.3f} ms/row")


def truncate() -> None:
    engine = create_engine(PG)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE inbox_state, inbox, minimal_inbox"))
    engine.dispose()


def query(sql: str) -> list:
    """The rows one statement answers on the bench database."""
    engine = create_engine(PG)
    with engine.connect() as connection:
        rows = connection.execute(text(sql)).all()
    engine.dispose()
    return rows


def scalar(sql: str) -> int:
    """The value one statement answers on the bench database."""
    return query(sql)[0][0]


def processed_rows() -> int:
    return scalar("SELECT count(*) FROM inbox_state WHERE status = 'processed'")


def wait_worker_ready(worker: subprocess.Popen) -> None:
    """Wait until the RQ worker has registered (it is listening on its queue)."""
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(REDIS)
    for _ in range(300):
        if worker.poll() is not None:
            raise SystemExit(f"worker exited with {worker.returncode}")
        if Worker.all(connection=connection):
            return
        time.sleep(0.1)
    raise SystemExit("the worker did not start")


def max_inbox_id() -> int:
    return scalar("SELECT coalesce(max(id), 0) FROM inbox")


def wait_drained(after_id: int) -> dict:
    """Wait until no row is pending; return the lag distribution of the rows after ``after_id``
    (those accepted during the measured run, not the warm-up)."""
    engine = create_engine(PG)
    started = time.monotonic()
    with engine.connect() as connection:
        while connection.execute(text("SELECT count(*) FROM inbox_state WHERE status = 'pending'")).scalar():
            connection.commit()
            time.sleep(0.2)
        drain_after = time.monotonic() - started
        row = connection.execute(text(
            "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) FROM ("
            "SELECT extract(epoch FROM s.processed_at - i.received_at) AS lag FROM inbox i "
            "JOIN inbox_state s ON s.inbox_id = i.id WHERE i.id > :after) s"),
            {"after": after_id}).one()
    engine.dispose()
    return {"rows": row[0], "p50": row[1], "p99": row[2], "max": row[3], "drain_after": drain_after}


if __name__ == "__main__":
    main()
