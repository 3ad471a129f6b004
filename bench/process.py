"""Processing benchmark: drain an inbox of realistic records into profiles with one real worker.

For each size N it loads N distinct records from all ten built-in connectors (bench/records.py:
about N/16 people, each on the platforms a real audience uses, several identifiers each, 5% of
requests redelivered, out of order) into the inbox as the receiver stores them, then times one
`hub worker --burst` on PostgreSQL + Redis draining them into profiles, in its steady state: the
rows after the first batch over the time between the first and the last batch's processed stamp
(the worker's start and its first batch's warm-up left out). The baseline, in the
same run, drains the same rows with every mapping ignoring every record: claiming, parsing
(each connector's own parse) and marking only. Each is drained ``--rounds`` times (3) from the
same stored rows and the fastest round counts. Prints records/s and the per-record cost at each
size, the ratio to the smallest, the people generated against the profiles made, and once the
records per connector. Every row must end processed: a failed one stops the run.

The worker claims ``--batch-size`` rows per transaction (2000, ``inbox.batch_size``): a backlog
drain's setting, where records of one person meet in fewer, larger batches.

    .venv/bin/python bench/process.py [--sizes 10000,100000,1000000] [--rounds 3] [--batch-size 2000]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import records  # noqa: E402
from bench.ingest import PG, REDIS, SECRET, query, reset_database  # noqa: E402
from hub import inbox  # noqa: E402

CHUNK = 1000  # deliveries per insert round: one statement per connector
#: the baseline worker: the hub's own, with every mapping ignoring every record (a topic suffix
#: would not do: the Freshdesk and Zendesk mappings have a catch-all "*" event)
BASELINE_WORKER = ("from hub.mapping import CompiledMapping\n"
                   "CompiledMapping.map = lambda self, document: None\n"
                   "from hub.cli import main\n"
                   "main(['worker', '--burst'])\n")
KEPT = ("alembic_version", "bench_rows", "bench_states", "minimal_inbox")


def settings() -> dict:
    """Every built-in connector enabled, with the settings its schema requires."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "website": {"webhook_secret": SECRET}, "shopify": {"webhook_secret": "shpss_bench"},
        "woocommerce": {"webhook_secret": "wc-bench-secret"}, "stripe": {"webhook_secret": "whsec_bench"},
        "paypal": {"webhook_id": "8PT597110X687430LKGECATA"},
        "mailchimp": {"webhook_key": "bench-mailchimp-webhook-key"},
        "klaviyo": {"webhook_secret": "klaviyo-bench-secret"},
        "sendgrid": {"verification_key": base64.b64encode(key).decode()},
        "zendesk": {"webhook_secret": "zendesk-bench-secret"},
        "freshdesk": {"webhook_username": "bench", "webhook_password": "freshdesk-bench-password"},
    }


def data_tables(connection: Connection) -> str:
    """The hub's tables (all but the schema version and the bench's own), comma-separated."""
    names = connection.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
    return ", ".join(name for name in names if name not in KEPT)


def load(n: int) -> tuple[int, int, float]:
    """Store N records as the receiver would and keep a copy; return (rows, people, seconds)."""
    engine = create_engine(PG)
    started, stored, people = time.perf_counter(), 0, []
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {data_tables(connection)} CASCADE"))
        connection.execute(text("DROP TABLE IF EXISTS bench_rows, bench_states"))
        batch: dict[str, list] = {}
        for connector, deliveries in records.stream(n, on_person=people.append):
            batch.setdefault(connector, []).extend(deliveries)
            if sum(map(len, batch.values())) >= CHUNK:
                stored += sum(len(inbox.store(connection, name, rows)) for name, rows in batch.items())
                batch = {}
        stored += sum(len(inbox.store(connection, name, rows)) for name, rows in batch.items())
        connection.execute(text("CREATE TABLE bench_rows AS SELECT * FROM inbox"))
        connection.execute(text("CREATE TABLE bench_states AS SELECT * FROM inbox_state"))
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return stored, len(people), time.perf_counter() - started


def reload() -> None:
    """Empty the hub's tables and put the stored rows back, pending, as they were loaded."""
    engine = create_engine(PG)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {data_tables(connection)} CASCADE"))
        connection.execute(text("INSERT INTO inbox SELECT * FROM bench_rows"))
        connection.execute(text("INSERT INTO inbox_state SELECT * FROM bench_states"))
        connection.execute(text("ANALYZE"))
    engine.dispose()


def drain(env: dict, baseline: bool = False) -> float:
    """Records per second of one burst worker draining every pending row, in its steady state.

    Timed by the rows themselves: each batch stamps its rows' ``processed_at`` as it finishes, so
    the rows after the first batch over the time from the first batch's stamp to the last one's is
    the drain's rate, with neither the worker's start and exit nor its first batch's warm-up in it.
    """
    command = ["-c", BASELINE_WORKER] if baseline else ["-m", "hub", "worker", "--burst"]
    subprocess.run([sys.executable, *command], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left = dict(query("SELECT status, count(*) FROM inbox_state WHERE status != 'processed' GROUP BY status"))
    if left:
        raise SystemExit(f"rows not processed: {left}")
    [(after_first, seconds)] = query(
        "SELECT count(*) FILTER (WHERE processed_at > first), "
        "extract(epoch FROM max(processed_at) - first) FROM inbox_state, "
        "(SELECT min(processed_at) AS first FROM inbox_state) AS f GROUP BY first")
    if not after_first:
        raise SystemExit("every row went in the first batch: a size needs more rows than --batch-size")
    return after_first / float(seconds)


def main() -> None:
    """Run every size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated record counts")
    parser.add_argument("--rounds", type=int, default=3, help="drains per size; the fastest is reported")
    parser.add_argument("--batch-size", type=int, default=2000, help="inbox.batch_size of the worker")
    args = parser.parse_args()
    reset_database()
    config = Path(tempfile.mkdtemp(prefix="tributary-bench-")) / "hub.yaml"
    config.write_text(json.dumps({
        "connectors": {name: {"enabled": True, **values} for name, values in settings().items()},
        "inbox": {"batch_size": args.batch_size, "drain_time_budget_seconds": 60}}))
    env = {**os.environ, "HUB_CONFIG": str(config), "HUB_DATABASE_URL": PG, "HUB_REDIS_URL": REDIS,
           "PYTHONPATH": str(ROOT)}
    print(f"{'records':>10}{'people':>9}{'profiles':>10}{'merges':>9}{'load s':>8}{'baseline/s':>12}"
          f"{'hub/s':>8}{'us/record':>11}{'vs first':>10}   all rounds hub/s")
    first, mix = None, {}
    for n in (int(s) for s in args.sizes.split(",")):
        stored, people, loading = load(n)
        mix[stored] = Counter(dict(query("SELECT connector, count(*) FROM inbox GROUP BY connector")))
        baseline, rounds = 0.0, []
        for _ in range(args.rounds):
            reload()
            baseline = max(baseline, drain(env, baseline=True))
            reload()
            rounds.append(drain(env))
        rate = max(rounds)
        [(profiles, merges)] = query("SELECT (SELECT count(*) FROM profiles WHERE merged_into IS NULL), "
                                     "(SELECT count(*) FROM merges)")
        per_record = 1e6 / rate
        first = first or per_record
        print(f"{stored:>10}{people:>9}{profiles:>10}{merges:>9}{loading:>8.0f}{baseline:>12.0f}"
              f"{rate:>8.0f}{per_record:>11.0f}{per_record / first:>9.2f}x   "
              + ", ".join(f"{r:.0f}" for r in rounds))
    print("\nrecords per connector")
    for name in sorted(records.CONNECTORS, key=lambda name: -sum(counts[name] for counts in mix.values())):
        print(f"{name:>12}" + "".join(f"{counts[name]:>10} {counts[name] / total:>4.0%}"
                                      for total, counts in mix.items()))


if __name__ == "__main__":
    main()
