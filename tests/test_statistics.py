"""Drains keep PostgreSQL's planner statistics up with the tables they grow."""
import pytest
from sqlalchemy import text

from hub import statistics
from hub.models import Base

pytestmark = pytest.mark.postgres

PEOPLE = ("INSERT INTO profiles (id, created_at, updated_at, metrics) SELECT 'p' || g, now(), now(), '{}' "
          "FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g")
VISITS = ("INSERT INTO activities (profile_id, type, source, source_id, occurred_at, properties) "
          "SELECT 'p' || (g % :people), 'page.viewed', 'website', 'pv-' || g, now(), '{}' "
          "FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g")
#: the lookup a drain makes for the timelines of a batch's profiles
TIMELINES = ("EXPLAIN SELECT profile_id, min(occurred_at) FROM activities WHERE profile_id IN ("
             + ", ".join(f"'p{n}'" for n in range(100)) + ") GROUP BY profile_id")


def run(engine, statement, **params):
    with engine.begin() as connection:
        result = connection.execute(text(statement), params)
        result = result.all() if result.returns_rows else []
        connection.execute(text("SELECT pg_stat_force_next_flush()"))  # counted at commit, not a second later
    return result


def rows_known(engine, table):
    return run(engine, "SELECT reltuples::int FROM pg_class WHERE oid = to_regclass(:t)", t=table)[0][0]


@pytest.fixture
def settled(db_engine):
    """Every table analyzed: only what the test changes counts."""
    for table in Base.metadata.sorted_tables:
        run(db_engine, f"ANALYZE {table.name}")
    return db_engine


def test_a_table_is_analyzed_once_its_changes_pass_1000_rows_and_a_tenth_of_it(settled):
    run(settled, PEOPLE, lo=0, hi=99)
    assert statistics.refresh(settled) == []  # 100 new profiles: not enough
    run(settled, "ANALYZE profiles")
    run(settled, VISITS, people=100, lo=1, hi=900)
    assert statistics.refresh(settled) == []  # 900 changes: not yet
    run(settled, VISITS, people=100, lo=901, hi=1200)
    assert statistics.refresh(settled) == ["activities"]
    assert rows_known(settled, "activities") == 1200
    run(settled, VISITS, people=100, lo=1201, hi=2200)  # 1,000 more: under 1,000 + 10% of 1,200
    assert statistics.refresh(settled) == []
    run(settled, VISITS, people=100, lo=2201, hi=2330)
    assert statistics.refresh(settled) == ["activities"]
    assert rows_known(settled, "activities") == 2330


def test_the_inbox_is_left_to_autovacuum(settled):
    run(settled, "INSERT INTO inbox (id, connector, kind, key, headers, body, received_at) "
                 "SELECT g, 'website', 'webhook', 'k' || g, '{}', '', now() FROM generate_series(1, 1500) g")
    run(settled, "INSERT INTO inbox_state (inbox_id, status, attempts, next_attempt_at) "
                 "SELECT g, 'pending', 0, now() FROM generate_series(1, 1500) g")
    run(settled, PEOPLE, lo=0, hi=99)
    run(settled, "ANALYZE profiles")
    run(settled, VISITS, people=100, lo=1, hi=1500)
    assert statistics.refresh(settled) == ["activities"]
    assert [rows_known(settled, table) for table in ("inbox", "inbox_state", "activities")] == [0, 0, 1500]


def test_fresh_statistics_turn_a_scan_of_the_whole_table_into_an_index_lookup(settled):
    run(settled, PEOPLE, lo=0, hi=49999)
    run(settled, VISITS, people=50000, lo=1, hi=100000)  # what a drain added since the last analyze
    with settled.begin() as connection:
        connection.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        stale = "\n".join(row[0] for row in connection.execute(text(TIMELINES)))
    assert "Seq Scan on activities" in stale, stale
    assert statistics.refresh(settled) == ["activities", "profiles"]
    with settled.begin() as connection:
        connection.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        fresh = "\n".join(row[0] for row in connection.execute(text(TIMELINES)))
    assert "ix_activities_timeline" in fresh and "Seq Scan" not in fresh, fresh


def test_only_one_process_analyzes_at_a_time(settled, db_engine):
    run(settled, PEOPLE, lo=0, hi=1499)
    with db_engine.connect() as other:
        other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": statistics.ANALYZE_LOCK})
        assert statistics.refresh(settled) == []
        other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": statistics.ANALYZE_LOCK})
        other.commit()
    assert statistics.refresh(settled) == ["profiles"]


def test_a_process_looks_at_most_once_per_interval(settled, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("hub.periodic.monotonic", lambda: clock[0])
    monkeypatch.setattr(statistics.CHECKING, "last", float("-inf"))
    run(settled, PEOPLE, lo=0, hi=1499)
    assert statistics.refresh_if_due(settled).result(timeout=30) == ["profiles"]
    run(settled, PEOPLE, lo=1500, hi=3499)
    clock[0] += statistics.CHECK_SECONDS - 1
    assert statistics.refresh_if_due(settled) is None
    clock[0] += 1
    assert statistics.refresh_if_due(settled).result(timeout=30) == ["profiles"]
    assert rows_known(settled, "profiles") == 3500


def test_the_analyze_runs_beside_the_caller_and_one_at_a_time(settled, monkeypatch):
    monkeypatch.setattr(statistics.CHECKING, "last", float("-inf"))
    run(settled, PEOPLE, lo=0, hi=1499)
    with settled.connect() as other:  # the table locked elsewhere: the ANALYZE waits for it
        other.execute(text("LOCK TABLE profiles IN SHARE UPDATE EXCLUSIVE MODE"))
        started = statistics.refresh_if_due(settled)
        assert not started.done()  # the caller went on while the ANALYZE waits
        monkeypatch.setattr(statistics.CHECKING, "last", float("-inf"))
        assert statistics.refresh_if_due(settled) is None  # one at a time
        other.rollback()
    assert started.result(timeout=30) == ["profiles"]
    assert rows_known(settled, "profiles") == 1500
