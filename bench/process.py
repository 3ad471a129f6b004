"""Processing benchmark: drain an inbox of realistic records into profiles with one real worker.

For each size N it loads N website records for about N/8 people (several identifiers each,
5% redeliveries of the same event, timestamps out of order) into the inbox, then times one
`hub worker --burst` on PostgreSQL + Redis draining them into profiles. The baseline, in the
same run, drains the same rows with a topic no mapping knows: claiming, parsing and marking
only. Prints records/s and the per-record cost at each size, and the ratio to the smallest.

    .venv/bin/python bench/process.py [--sizes 10000,100000,1000000]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import PG, REDIS, SECRET, reset_database  # noqa: E402
from hub.models import InboxRecord  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def events(n: int, seed: int = 11):
    """N website events for N/8 people: views, identifies, forms; some redelivered, out of order."""
    rng = random.Random(seed)
    people = max(1, n // 8)
    made = 0
    while made < n:
        p = rng.randrange(people)
        anon = f"anon-{p}-{rng.randrange(2)}"
        at = (T0 + timedelta(minutes=rng.randrange(500_000))).isoformat()
        kind = rng.choices(("page.viewed", "identify", "form.submitted"), (6, 1, 1))[0]
        event = {"id": f"ev-{made}", "type": kind, "anonymous_id": anon, "timestamp": at,
                 "properties": {"url": f"https://shop.example.com/p/{rng.randrange(300)}"}}
        if kind != "page.viewed":
            event["email"] = f"person{p}@example.com"
            event["traits"] = {"first_name": f"P{p}"}
        if kind == "form.submitted":
            event["phone"] = f"+1415{p % 10_000_000:07d}"
        yield event
        made += 1
        if made < n and rng.random() < 0.05:  # a redelivery: same event id, stored once
            yield event


def load(n: int, topic_suffix: str = "") -> int:
    """Insert the events as inbox rows; return how many rows were stored."""
    engine = create_engine(PG)
    now = datetime.now(timezone.utc)
    seen = set()
    rows = []
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE inbox, profiles, identities, traits, activities, merges CASCADE"))
        for event in events(n):
            if event["id"] in seen:
                continue
            seen.add(event["id"])
            rows.append({"connector": "website", "kind": "webhook", "key": event["id"],
                         "topic": event["type"] + topic_suffix, "headers": {}, "received_at": now,
                         "body": json.dumps(event, sort_keys=True).encode(), "status": "pending",
                         "attempts": 0, "next_attempt_at": now})
            if len(rows) == 5000:
                connection.execute(insert(InboxRecord), rows)
                rows = []
        if rows:
            connection.execute(insert(InboxRecord), rows)
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return len(seen)


def drain(env: dict, startup: float = 0.0) -> float:
    """Seconds for one burst worker to process every pending row, less its start-up time."""
    started = time.perf_counter() + startup
    subprocess.run([sys.executable, "-m", "hub", "worker", "--burst"], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    engine = create_engine(PG)
    with engine.connect() as connection:
        left = connection.scalar(select(func.count()).where(InboxRecord.status != "processed"))
    engine.dispose()
    if left:
        raise SystemExit(f"{left} rows were not processed")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated record counts")
    args = parser.parse_args()
    reset_database()
    work = Path(tempfile.mkdtemp(prefix="tributary-bench-"))
    config = work / "hub.yaml"
    config.write_text(f"connectors: {{website: {{enabled: true, webhook_secret: '{SECRET}'}}}}\n"
                      "inbox: {batch_size: 1000, drain_time_budget_seconds: 60}\n")
    env = {**os.environ, "HUB_CONFIG": str(config), "HUB_DATABASE_URL": PG, "HUB_REDIS_URL": REDIS,
           "PYTHONPATH": str(ROOT)}
    load(0)
    startup = drain(env)  # a worker's start and exit with nothing to do
    print(f"worker start-up {startup:.2f} s, not counted below")
    print(f"{'records':>10}{'profiles':>10}{'baseline/s':>12}{'hub/s':>10}{'us/record':>11}{'vs first':>10}")
    first = None
    for n in (int(s) for s in args.sizes.split(",")):
        stored = load(n, topic_suffix=".unmapped")
        baseline = stored / drain(env, startup)
        stored = load(n)
        seconds = drain(env, startup)
        engine = create_engine(PG)
        with engine.connect() as connection:
            profiles = connection.scalar(text("SELECT count(*) FROM profiles WHERE merged_into IS NULL"))
        engine.dispose()
        per_record = seconds / stored * 1e6
        first = first or per_record
        print(f"{stored:>10}{profiles:>10}{baseline:>12.0f}{stored / seconds:>10.0f}{per_record:>11.0f}"
              f"{per_record / first:>9.2f}x")


if __name__ == "__main__":
    main()
