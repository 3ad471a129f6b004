"""The inbox: durable raw records, their idempotent insert, claiming and status changes."""
from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import Connection, Row, Select, func, select, update
from sqlalchemy.orm import Session

from hub.connector import Delivery
from hub.db import is_postgres, one_of, upsert_insert
from hub.models import FAILED, PENDING, PROCESSED, WEBHOOK, InboxRecord, utcnow

ERROR_LIMIT = 2000
#: what a claim reads of a row: everything but the headers, kept for the record only
CLAIMED = tuple(c for c in InboxRecord.__table__.c if c.name != "headers")


def store(connection: Connection, connector: str, deliveries: Sequence[Delivery],
          kind: str = WEBHOOK, received_at: datetime | None = None) -> list[int]:
    """Insert deliveries not seen before; return the new row ids (duplicates are skipped).

    One statement: atomic on its own (autocommit) or inside the caller's transaction.
    Takes a Core connection (``session.connection()`` from a session).
    """
    return [row_id for row_id, _key in store_keyed(connection, connector, deliveries, kind, received_at)]


def store_keyed(connection: Connection, connector: str, deliveries: Sequence[Delivery],
                kind: str = WEBHOOK, received_at: datetime | None = None) -> list[tuple[int, str]]:
    """``store``, returning (row id, stored key) of each new row, in no particular order."""
    if not deliveries:
        return []
    now = received_at or utcnow()
    rows = [
        {
            "connector": connector, "kind": kind, "key": stored_key(d), "topic": d.topic,
            "headers": dict(d.headers), "body": d.body, "received_at": now,
            "occurred_at": d.occurred_at, "status": PENDING, "attempts": 0, "next_attempt_at": now,
        }
        for d in _unique_by_key(deliveries)
    ]
    return [(row_id, key) for row_id, key in connection.execute(_insert_statement(connection.dialect.name), rows)]


def stored_key(delivery: Delivery) -> str:
    """The idempotency key as the inbox keeps it (at most 255 characters)."""
    return delivery.key[:255]


@functools.cache
def _insert_statement(dialect: str):
    """INSERT ... ON CONFLICT (connector, key) DO NOTHING RETURNING id, built once per dialect."""
    table = InboxRecord.__table__
    return (upsert_insert(dialect, table).on_conflict_do_nothing(index_elements=["connector", "key"])
            .returning(table.c.id, table.c.key))


def _unique_by_key(deliveries: Iterable[Delivery]) -> list[Delivery]:
    seen: dict[str, Delivery] = {}
    for delivery in deliveries:
        seen.setdefault(stored_key(delivery), delivery)
    return list(seen.values())


def claim(session: Session, limit: int, now: datetime | None = None) -> list[Row]:
    """Lock up to ``limit`` due pending rows for this transaction (see :func:`claim_statement`).

    On PostgreSQL other workers skip the locked rows and take the next ones; on SQLite the
    transaction already holds the write lock. The rows come as plain rows with the inbox's
    columns as attributes (but ``headers``): a batch is read once, with no ORM bookkeeping.
    """
    return session.execute(claim_statement(limit, now or utcnow(), is_postgres(session.get_bind()))).all()


def claim_statement(limit: int, now: datetime, skip_locked: bool) -> Select:
    """Due pending rows, longest due first (then by id), up to ``limit``.

    The order is the pending-rows index's own, so a claim reads only pending rows whatever the
    planner's statistics say (ordered by id alone, a stale estimate had it walk the primary key
    through every processed row: O(inbox) per claim).
    """
    table = InboxRecord.__table__
    statement = (
        select(*CLAIMED)
        .where(table.c.status == PENDING, table.c.next_attempt_at <= now)
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    return statement.with_for_update(skip_locked=True) if skip_locked else statement


def mark_processed(session: Session, ids: Sequence[int], now: datetime | None = None) -> None:
    """Mark rows processed (in the transaction that wrote their effects); erased rows stay erased."""
    if ids:
        table, connection = InboxRecord.__table__, session.connection()  # Core: the batch's objects are not read again
        connection.execute(table.update().where(one_of(connection.dialect.name, table.c.id, ids),
                                                table.c.status == PENDING)
                           .values(status=PROCESSED, processed_at=now or utcnow(), error=None))


def mark_attempt_failed(session: Session, record: Row, error: str, max_attempts: int,
                        backoff: float, backoff_max: float, now: datetime | None = None) -> None:
    """Count a failed attempt: retry later with exponential backoff, or fail for good."""
    attempts = record.attempts + 1
    values: dict = {"attempts": attempts, "error": error[:ERROR_LIMIT]}
    if attempts >= max_attempts:
        values["status"] = FAILED
    else:
        delay = min(backoff * 2 ** (attempts - 1), backoff_max)
        values["next_attempt_at"] = (now or utcnow()) + timedelta(seconds=delay)
    table = InboxRecord.__table__
    session.execute(table.update().where(table.c.id == record.id).values(values))


def has_due(session: Session, now: datetime | None = None) -> bool:
    """True if some pending row is due for processing."""
    statement = select(InboxRecord.id).where(
        InboxRecord.status == PENDING, InboxRecord.next_attempt_at <= (now or utcnow())
    ).order_by(InboxRecord.next_attempt_at).limit(1)  # read from the pending-rows index, as claim
    return session.scalar(statement) is not None


def counts(session: Session) -> dict[tuple[str, str], int]:
    """Row counts by (connector, status)."""
    statement = select(InboxRecord.connector, InboxRecord.status, func.count()).group_by(
        InboxRecord.connector, InboxRecord.status
    )
    return {(connector, status): n for connector, status, n in session.execute(statement)}


def replay(session: Session, connector: str | None = None, since: datetime | None = None) -> int:
    """Put failed rows back to pending with a fresh attempt count; return how many."""
    statement = update(InboxRecord).where(InboxRecord.status == FAILED)
    if connector:
        statement = statement.where(InboxRecord.connector == connector)
    if since:
        statement = statement.where(InboxRecord.received_at >= since)
    result = session.execute(
        statement.values(status=PENDING, attempts=0, next_attempt_at=utcnow(), error=None)
    )
    return result.rowcount
