"""Planner statistics kept fresh while drains grow the tables (PostgreSQL).

PostgreSQL plans every statement from the statistics ANALYZE last gathered. A drain that
grows a table from nothing to millions of rows (a new install, a rebuild, a long backlog)
leaves them far behind until autovacuum's next analyze, or for good where autovacuum is off:
a lookup of a few hundred keys then looks like most of the table and is planned as a scan
of all of it, so each batch costs more as the store grows. Like autovacuum's own analyze,
:func:`refresh_if_due` re-analyzes a table once the rows changed since its last analyze
pass a share of its size; it looks at most once per interval per process, and only one
process analyzes at a time. The ANALYZE runs on a thread of its own, as autovacuum's runs in a
process of its own: sampling a table of a million rows takes PostgreSQL about a second, which the
drain does not wait for. The inbox is left to autovacuum: its statements find their rows
by key or through the pending-rows index whatever the statistics say, and it is the largest
table, so sampling it costs the most.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

from sqlalchemy import Connection, Engine, text

from hub.db import is_postgres, run_atomic
from hub.models import Base
from hub.periodic import Every

log = logging.getLogger(__name__)

#: seconds between two looks at the statistics, per process
CHECK_SECONDS = 15
#: a table is analyzed once this many rows, plus this share of its rows, changed since its last analyze
BASE_ROWS = 1000
SHARE = 0.1
#: the advisory lock that keeps two processes from analyzing at once
ANALYZE_LOCK = 0x616E_6C7A  # "anlz"
CHECKING = Every()
#: this process's ANALYZE in progress, if any
_running: Future | None = None
#: tables whose plans do not depend on their statistics (see the module's docstring)
UNSTEERED = frozenset({"inbox", "inbox_state"})

STALE = text(
    "SELECT c.relname FROM unnest(CAST(:tables AS text[])) AS t(name) "
    "JOIN pg_class c ON c.oid = to_regclass(t.name) "
    "JOIN pg_stat_user_tables s ON s.relid = c.oid "
    "WHERE s.n_mod_since_analyze > :base + :share * GREATEST(c.reltuples, 0) ORDER BY c.relname")


def refresh_if_due(engine: Engine) -> Future | None:
    """Start, on a background thread, an ANALYZE of the hub's tables whose statistics lag behind, if
    :data:`CHECK_SECONDS` have passed since this process last looked and its last one has finished.
    Returns the future of the tables analyzed, or None if not started."""
    global _running
    if not is_postgres(engine) or (_running is not None and not _running.done()) \
            or not CHECKING.due(CHECK_SECONDS):
        return None
    future: Future = Future()
    future.set_running_or_notify_cancel()
    _running = future
    threading.Thread(target=_refresh_into, args=(engine, future), name="tributary-analyze", daemon=True).start()
    return future


def _refresh_into(engine: Engine, future: Future) -> None:
    try:
        future.set_result(refresh(engine))
    except Exception as exc:  # statistics only steer plans: a failure must not stop the drain
        log.warning("could not refresh planner statistics: %s", type(exc).__name__)
        future.set_result([])


def refresh(engine: Engine) -> list[str]:
    """ANALYZE now each of the hub's tables changed by more than ``BASE_ROWS + SHARE`` of its rows
    since its last analyze; nothing if another process is analyzing. Returns the tables analyzed."""
    stale = run_atomic(engine, _analyze_stale)
    if stale:
        log.info("planner statistics refreshed: %s", ", ".join(stale))
    return stale


def _analyze_stale(connection: Connection) -> list[str]:
    if not connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ANALYZE_LOCK}):
        return []
    try:
        tables = [table.name for table in Base.metadata.sorted_tables if table.name not in UNSTEERED]
        stale = list(connection.scalars(STALE, {"tables": tables, "base": BASE_ROWS, "share": SHARE}))
        for name in stale:
            connection.exec_driver_sql(f'ANALYZE "{name}"')
        return stale
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ANALYZE_LOCK})
