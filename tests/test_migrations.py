"""Migrations: up on a fresh database, down and up again, and the models match them."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from hub import migrate
from hub.db import make_engine
from hub.models import Base
from tests.conftest import scratch_schema

TABLES = {"activities", "alembic_version", "changes", "feed_horizon", "identities", "inbox", "inbox_state", "merges", "profiles",
          "outbound_deliveries", "outbound_subscriptions", "segment_members", "separations", "stage_history",
          "suppressions", "sync_cursors", "traits", "trigger_matches"}
#: the key columns PostgreSQL compares byte by byte (collation "C")
BYTE_ORDERED = {("activities", "profile_id"), ("activities", "source"), ("activities", "source_id"),
                ("activities", "type"), ("identities", "profile_id"), ("identities", "type"),
                ("identities", "value"), ("inbox", "connector"), ("inbox", "key"), ("merges", "merged_id"),
                ("merges", "survivor_id"), ("profiles", "id"), ("profiles", "merged_into"),
                ("segment_members", "profile_id"), ("separations", "profile_a"), ("separations", "profile_b"),
                ("stage_history", "profile_id"), ("suppressions", "identifier_hash"), ("traits", "name"),
                ("traits", "profile_id"), ("trigger_matches", "profile_id")}


def test_the_test_database_is_at_head_and_matches_the_models(database_url):
    engine = create_engine(database_url)
    assert migrate.current_revision(engine) == migrate.head_revision() == "0010"
    assert TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={
            "compare_type": False,
            "include_name": lambda name, kind, _: not (kind == "table" and name == "test_effects")}),
                                Base.metadata)
    assert diff == []
    engine.dispose()


def test_down_to_nothing_and_up_again(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/m.db")
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "0010"
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    migrate.upgrade(engine)
    assert TABLES == set(inspect(engine).get_table_names())
    engine.dispose()


def _byte_ordered(engine) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return set(map(tuple, connection.execute(text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND collation_name = 'C'"))))


@pytest.mark.postgres
def test_key_columns_compare_byte_by_byte_on_postgresql(database_url):
    engine = create_engine(database_url)
    assert _byte_ordered(engine) == BYTE_ORDERED
    engine.dispose()
    declared = {(table.name, column.name) for table in Base.metadata.sorted_tables for column in table.columns
                if getattr(column.type.dialect_impl(engine.dialect), "collation", None) == "C"}
    assert declared == BYTE_ORDERED


@pytest.mark.postgres
def test_the_byte_order_migration_goes_down_and_up_on_postgresql(database_url):
    with scratch_schema(database_url.split("?")[0], "m") as url:
        engine = create_engine(url)
        migrate.upgrade(engine, "0008")
        with engine.begin() as connection:  # a row across the keys survives the rewrite
            connection.execute(text("INSERT INTO profiles (id, metrics, created_at, updated_at) "
                                    "VALUES ('p-1', '{}', now(), now())"))
            connection.execute(text("INSERT INTO identities (profile_id, type, value, source, first_seen_at, "
                                    "last_seen_at) VALUES ('p-1', 'email', 'ana@example.com', 'shopify', now(), now())"))
        assert _byte_ordered(engine) == set()
        migrate.upgrade(engine)
        assert _byte_ordered(engine) == BYTE_ORDERED
        migrate.downgrade(engine, "0008")
        assert _byte_ordered(engine) == set()
        migrate.upgrade(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT i.value FROM identities i JOIN profiles p ON p.id = i.profile_id "
                                           "WHERE i.type = 'email'")).all() == [("ana@example.com",)]
        engine.dispose()


INBOX = ("INSERT INTO inbox (id, connector, kind, key, topic, headers, body, received_at, status, attempts, "
         "next_attempt_at, error, processed_at) VALUES "
         "(1, 'shopify', 'webhook', 'k-1', 'orders/create', '{}', :body, :at, 'processed', 0, :at, NULL, :done), "
         "(2, 'stripe', 'webhook', 'k-2', 'charge.succeeded', '{}', :body, :at, 'pending', 2, :due, 'KeyError: x', "
         "NULL)")
AT, DUE, DONE = "2026-11-01 09:00:00+00:00", "2026-11-01 10:00:00+00:00", "2026-11-01 09:00:05+00:00"


def _inbox_state_round_trip(engine):
    migrate.upgrade(engine, "0009")
    with engine.begin() as connection:
        connection.execute(text(INBOX), {"body": b"{}", "at": AT, "due": DUE, "done": DONE})
    migrate.upgrade(engine)
    states = "SELECT inbox_id, status, attempts, error, next_attempt_at, processed_at FROM inbox_state ORDER BY 1"
    with engine.connect() as connection:
        moved = connection.execute(text(states)).all()
    assert [row[:4] for row in moved] == [(1, "processed", 0, None), (2, "pending", 2, "KeyError: x")]
    assert {c["name"] for c in inspect(engine).get_columns("inbox")} == {
        "id", "connector", "kind", "key", "topic", "headers", "body", "received_at", "occurred_at"}
    assert [i["name"] for i in inspect(engine).get_indexes("inbox_state")] == ["ix_inbox_state_pending"]
    migrate.downgrade(engine, "0009")
    assert "inbox_state" not in inspect(engine).get_table_names()
    with engine.connect() as connection:
        back = connection.execute(text("SELECT id, status, attempts, error, next_attempt_at, processed_at "
                                       "FROM inbox ORDER BY 1")).all()
    assert back == moved
    assert [i["name"] for i in inspect(engine).get_indexes("inbox") if i["name"].startswith("ix_")] == [
        "ix_inbox_pending"]
    migrate.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text(states)).all() == moved


def test_the_inbox_state_migration_moves_every_state_and_back_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/m.db")  # as the hub connects: foreign keys enforced
    _inbox_state_round_trip(engine)
    engine.dispose()


@pytest.mark.postgres
def test_the_inbox_state_migration_moves_every_state_and_back_on_postgresql(database_url):
    with scratch_schema(database_url.split("?")[0], "m") as url:
        engine = create_engine(url)
        _inbox_state_round_trip(engine)
        engine.dispose()
