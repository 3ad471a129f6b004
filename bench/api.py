"""API benchmark: profile reads of the hub against a minimal Flask app, on 1M profiles, in the same run.

Loads N profiles (default 1,000,000) into PostgreSQL, each with an e-mail, a phone and a shop id,
three traits and a three-activity timeline (kept between runs: a second run with the same N reuses
them). Then, under gunicorn with the same number of sync workers, wrk (16 connections) sends
`GET /api/v1/profiles?email=` and `GET /api/v1/profiles/{id}` for random people to the hub and to a
minimal app answering the same lookups with one indexed SELECT each (bench/minimal_api.py).
Prints requests/s, p50 and p99 latency of each and the ratio.

    .venv/bin/python bench/api.py [--profiles 1000000] [--duration 10] [--web-workers 4]

Needs PostgreSQL (BENCH_API_DATABASE_URL), Redis (BENCH_REDIS_URL) and wrk (apt-get install wrk).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import fresh_database, run_wrk, wait_healthy  # noqa: E402

PG = os.environ.get("BENCH_API_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/tributary_bench_api")
TOKEN = "bench-api-token-0123456789abcdef"
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
CHUNK = 100_000
#: wrk: each connection walks the request file from its own offset
WRK_SCRIPT = r"""
local paths = {}
local n = 0
counter = 0
function setup(thread)
  thread:set("offset", counter); counter = counter + 1
end
function init(args)
  for line in io.lines(args[1]) do n = n + 1; paths[n] = line end
  step = offset * 7919
  wrk.headers["Authorization"] = "Bearer " .. args[2]
end
function request()
  step = step + 1
  return wrk.format("GET", paths[(step % n) + 1])
end
"""
METRICS = {"orders_count": 1, "total_spent": {"EUR": "42.00"}, "currency": "EUR", "payments_count": 0,
           "total_paid": {}, "open_tickets": 0, "last_order_at": "2026-03-01T10:00:00+00:00",
           "first_seen_at": "2026-01-01T10:00:00+00:00", "last_seen_at": "2026-03-02T10:00:00+00:00"}
#: the profile id of person g, as a UUID string
PROFILE_ID = "md5('person' || g)::uuid::text"
STEPS = [
    ("profiles", "INSERT INTO profiles (id, metrics, created_at, updated_at) SELECT " + PROFILE_ID + ", "
                 "CAST(:metrics AS json), timestamptz '2026-01-01' + g * interval '1 second', "
                 "timestamptz '2026-03-01' + g * interval '1 second' FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g"),
    ("identities", "INSERT INTO identities (profile_id, type, value, source, first_seen_at, last_seen_at) "
                   "SELECT " + PROFILE_ID + ", t.type, CASE t.type WHEN 'email' THEN 'person' || g || '@example.com' "
                   "WHEN 'phone' THEN '+1415' || lpad(g::text, 7, '0') ELSE g::text END, 'shopify', "
                   "timestamptz '2026-01-01', timestamptz '2026-03-02' FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g, "
                   "(VALUES ('email'), ('phone'), ('shopify_customer_id')) t(type)"),
    ("traits", "INSERT INTO traits (profile_id, name, value, source, observed_at) SELECT " + PROFILE_ID + ", "
               "t.name, CASE t.name WHEN 'email' THEN to_json('person' || g || '@example.com') "
               "WHEN 'first_name' THEN to_json('P' || g) ELSE to_json('Person'::text) END, 'shopify', "
               "timestamptz '2026-01-01' FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g, "
               "(VALUES ('email'), ('first_name'), ('last_name')) t(name)"),
    ("activities", "INSERT INTO activities (profile_id, type, source, source_id, occurred_at, properties) "
                   "SELECT " + PROFILE_ID + ", t.type, t.source, t.type || ':' || g, "
                   "timestamptz '2026-01-01' + t.day * interval '1 day' + g * interval '1 second', "
                   "CAST(t.props AS json) FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g, (VALUES "
                   "('page.viewed', 'website', 0, '{\"url\": \"https://shop.example.com/\"}'), "
                   "('order.placed', 'shopify', 59, '{\"amount\": \"42.00\", \"currency\": \"EUR\"}'), "
                   "('email.opened', 'sendgrid', 60, '{\"campaign_id\": \"c-1\"}')) t(type, source, day, props)"),
]


def load(profiles: int) -> None:
    """Create the database with ``profiles`` people, unless it already holds exactly that many."""
    name = PG.rsplit("/", 1)[1]
    engine = create_engine(PG)
    try:
        with engine.connect() as connection:
            if connection.scalar(text("SELECT count(*) FROM profiles")) == profiles:
                print(f"reusing {profiles} profiles in {name}")
                return
    except Exception:  # no such database or tables yet
        pass
    finally:
        engine.dispose()
    engine = fresh_database(PG)
    with tqdm(total=profiles * len(STEPS), unit="profiles", desc="loading") as bar:
        for _, statement in STEPS:
            for lo in range(1, profiles + 1, CHUNK):
                hi = min(profiles, lo + CHUNK - 1)
                with engine.begin() as connection:
                    connection.execute(text(statement), {"lo": lo, "hi": hi, "metrics": json.dumps(METRICS)})
                bar.update(hi - lo + 1)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def request_files(work: Path, profiles: int, count: int = 20_000) -> dict[str, Path]:
    """Files of request paths for random people: by e-mail, and by profile id."""
    rng = random.Random(7)
    people = [rng.randint(1, profiles) for _ in range(count)]
    engine = create_engine(PG)
    with engine.connect() as connection:
        ids = dict(connection.execute(text(
            "SELECT g, " + PROFILE_ID + " FROM unnest(CAST(:people AS int[])) g"), {"people": people}).all())
    engine.dispose()
    files = {"by email": work / "email.txt", "by id": work / "id.txt"}
    files["by email"].write_text("".join(f"/api/v1/profiles?email=person{g}%40example.com\n" for g in people))
    files["by id"].write_text("".join(f"/api/v1/profiles/{ids[g]}\n" for g in people))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=4)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    load(args.profiles)
    work = Path(tempfile.mkdtemp(prefix="tributary-bench-api-"))
    files = request_files(work, args.profiles)
    script = work / "get.lua"
    script.write_text(WRK_SCRIPT)
    config = work / "hub.yaml"
    config.write_text(json.dumps({"api_tokens": [{"name": "bench", "token": TOKEN, "scopes": ["read"]}]}))
    env = {**os.environ, "HUB_CONFIG": str(config), "HUB_DATABASE_URL": PG, "BENCH_DATABASE_URL": PG,
           "BENCH_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    env["HUB_REDIS_URL"] = REDIS  # as deployed on PostgreSQL: jobs on workers, none in the web processes
    servers = {
        "minimal": [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:8111", "--workers", str(args.web_workers),
                    "bench.minimal_api:app"],
        "hub": [sys.executable, "-m", "hub", "serve", "--port", "8112", "--workers", str(args.web_workers),
                "--threads", "1"],
    }
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.rounds):
        for index, (name, command) in enumerate(servers.items()):
            port = 8111 + index
            server = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            try:
                wait_healthy(f"http://127.0.0.1:{port}/healthz", server)
                for lookup, paths in files.items():
                    run_wrk(port, script, paths, 2, args.connections, TOKEN)  # warm-up
                    results.setdefault((lookup, name), []).append(
                        run_wrk(port, script, paths, args.duration, args.connections, TOKEN))
            finally:
                server.terminate()
                server.wait(timeout=30)
    print(f"{args.profiles} profiles; {args.rounds} rounds of {args.duration} s, {args.connections} connections, "
          f"{args.web_workers} web workers; best round of each:")
    print(f"{'':20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}   all rounds req/s")
    for lookup in files:
        best = {}
        for name in servers:
            runs = results[(lookup, name)]
            best[name] = max(runs, key=lambda r: r["rps"])
            r = best[name]
            every = ", ".join(f"{x['rps']:.0f}" for x in runs)
            print(f"{lookup + ' ' + name:20}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['non2xx']:>10}"
                  f"   {every}")
        print(f"{'':20}ratio hub/minimal: {best['hub']['rps'] / best['minimal']['rps']:.2f}x")


if __name__ == "__main__":
    time.tzset()
    main()
