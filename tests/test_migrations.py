"""Migrations: up on a fresh database, down and up again, and the models match them."""
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from hub import migrate
from hub.models import Base

TABLES = {"activities", "alembic_version", "changes", "feed_horizon", "identities", "inbox", "merges", "profiles",
          "outbound_deliveries", "outbound_subscriptions", "segment_members", "separations", "stage_history",
          "suppressions", "sync_cursors", "traits", "trigger_matches"}


def test_the_test_database_is_at_head_and_matches_the_models(database_url):
    engine = create_engine(database_url)
    assert migrate.current_revision(engine) == migrate.head_revision() == "0008"
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
    assert migrate.current_revision(engine) == "0008"
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    migrate.upgrade(engine)
    assert TABLES == set(inspect(engine).get_table_names())
    engine.dispose()
