"""Engine and sessions for SQLite (embedded) and PostgreSQL."""
from __future__ import annotations

from typing import Callable, ContextManager, Iterable, Sequence, TypeVar

from sqlalchemy import Connection, Engine, any_, bindparam, cast, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import NullType
from sqlalchemy.orm import Session, sessionmaker

from hub import json_codec

T = TypeVar("T")


#: seconds a pooled read connection lives, so its prepared statements' plans are remade
#: at least this often as the tables grow (and on every ANALYZE in between)
READ_PLAN_LIFETIME = 600


def make_engine(url: str, **options) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and write-locking transactions."""
    options.setdefault("json_serializer", json_codec.dumps)
    options.setdefault("json_deserializer", json_codec.loads)
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
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _postgres_connect(dbapi_connection, _record):
        # sessions in UTC: times come back in the hub's zone, with nothing left to convert
        autocommit, dbapi_connection.autocommit = dbapi_connection.autocommit, True
        dbapi_connection.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.autocommit = autocommit

    return engine


def make_read_engine(engine: Engine) -> Engine:
    """The engine for API reads: autocommit (no BEGIN and ROLLBACK round trips, no write lock on
    SQLite); on PostgreSQL its own pool, whose connections prepare the statements they run often.

    The reads are a fixed set of keyed lookups whose best plan does not depend on the values, so
    a prepared statement saves their planning, most of their cost. Its plan is remade on every
    ANALYZE, and a connection is replaced after :data:`READ_PLAN_LIFETIME`, so no plan made
    while the tables were small outlives that by much.
    """
    if not is_postgres(engine):
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return make_engine(engine.url.render_as_string(hide_password=False), pool_recycle=READ_PLAN_LIFETIME,
                       connect_args={"prepare_threshold": 5}, isolation_level="AUTOCOMMIT")


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


def one_of(dialect: str, column: ColumnElement, values: Iterable) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(CAST(:array AS type[]))``, one array
    parameter (see :func:`array_literal`), so a thousand values make one short statement rather
    than a thousand placeholders to render and parse. The parameter goes untyped, so the server
    reads it as the array type itself: a constant to the planner, which then tests membership by
    hash, not by walking the array for each row a scan reads."""
    if dialect == "postgresql":
        array = bindparam(None, array_literal(values), type_=NullType())
        return column == any_(cast(array, postgresql.ARRAY(column.type)))
    return column.in_(list(values))


def array_literal(values: Iterable[str | int]) -> str:
    """PostgreSQL's text form of a one-dimensional array of these strings or integers, to be
    cast to the array type (psycopg adapts a list element by element, in Python: slow for a
    batch's thousands)."""
    return "{" + ",".join(str(v) if isinstance(v, int) else _quoted_element(v) for v in values) + "}"


def _quoted_element(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pieces(dialect: str, items: Sequence[T], size: int = 500) -> list[Sequence[T]]:
    """``items`` to look up with :func:`one_of`: in one piece on PostgreSQL (one array
    parameter), in pieces of ``size`` elsewhere (SQLite's limit on bound parameters)."""
    if dialect == "postgresql":
        return [items] if items else []
    return [items[start:start + size] for start in range(0, len(items), size)]


def is_postgres(engine: Engine) -> bool:
    """True on PostgreSQL (row locks with SKIP LOCKED, advisory locks)."""
    return engine.dialect.name == "postgresql"
