"""Engine and sessions for SQLite (embedded) and PostgreSQL."""
from __future__ import annotations

from typing import Callable, ContextManager, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


def make_engine(url: str, **options) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and write-locking transactions."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **options)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            # let SQLAlchemy, not pysqlite, emit BEGIN so SAVEPOINTs and locking work
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            # take the write lock up front: no deadlock on lock upgrade between writers;
            # in autocommit each statement is its own transaction, so no BEGIN at all
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # no ping per checkout: a dropped connection invalidates the pool; run_atomic retries
    options.setdefault("pool_size", 5)
    # no server-side prepared statements: a generic plan made while a table was small (a fresh
    # install, a rebuild) would keep scanning it whole once it has grown
    options.setdefault("connect_args", {"prepare_threshold": None})
    options.setdefault("max_overflow", 10)
    return create_engine(url, **options)


def run_atomic(engine: Engine, statement: Callable[[Connection], T]) -> T:
    """Run one self-contained statement in autocommit mode (one round trip, no BEGIN/COMMIT).

    Tried once more if the server had dropped the pooled connection (a restart).
    """
    return _once_more_if_dropped(lambda: engine.connect().execution_options(isolation_level="AUTOCOMMIT"),
                                 statement)


def run_in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one transaction, committed at the end; tried once more as :func:`run_atomic`."""
    return _once_more_if_dropped(engine.begin, work)


def _once_more_if_dropped(open_connection: Callable[[], ContextManager[Connection]],
                          work: Callable[[Connection], T]) -> T:
    for attempt in (1, 2):
        try:
            with open_connection() as connection:
                return work(connection)
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def upsert_insert(dialect: str, table):
    """An INSERT on ``table`` that takes ``ON CONFLICT`` clauses, for PostgreSQL or SQLite."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def is_postgres(engine: Engine) -> bool:
    """True on PostgreSQL (row locks with SKIP LOCKED, advisory locks)."""
    return engine.dialect.name == "postgresql"
