"""The inbox: durable raw records, their idempotent insert, claiming and status changes.

A record (``inbox``) is written once; its state (``inbox_state``: status, attempts, when it is
due, when it was processed) is a narrow row of its own, inserted with it, which claims read
and batches update.
"""
from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Iterable, Sequence

from sqlalchemy import Connection, Row, Select, func, select, update
from sqlalchemy.orm import Session

from hub import bulk
from hub.connector import Delivery
from hub.db import is_postgres, one_of, upsert_insert
from hub.models import FAILED, PENDING, PROCESSED, WEBHOOK, InboxRecord, InboxState, utcnow

ERROR_LIMIT = 2000
RECORDS, STATES = InboxRecord.__table__, InboxState.__table__
#: what a claim reads of a record: everything but the headers (kept for the record only), and its state
CLAIMED = (*(c for c in RECORDS.c if c.name != "headers"), *(c for c in STATES.c if c.name != "inbox_id"))


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
            "headers": dict(d.headers), "body": d.body, "received_at": now, "occurred_at": d.occurred_at,
        }
        for d in _unique_by_key(deliveries)
    ]
    stored = [(row_id, key) for row_id, key in connection.execute(_insert_statement(connection.dialect.name), rows)]
    bulk.insert(connection, STATES, [{"inbox_id": row_id, "status": PENDING, "attempts": 0, "next_attempt_at": now}
                                     for row_id, _ in stored])
    return stored


def stored_key(delivery: Delivery) -> str:
    """The idempotency key as the inbox keeps it (at most 255 characters)."""
    return delivery.key[:255]


@functools.cache
def _insert_statement(dialect: str):
    """INSERT ... ON CONFLICT (connector, key) DO NOTHING RETURNING id, built once per dialect."""
    return (upsert_insert(dialect, RECORDS).on_conflict_do_nothing(index_elements=["connector", "key"])
            .returning(RECORDS.c.id, RECORDS.c.key))


def _unique_by_key(deliveries: Iterable[Delivery]) -> list[Delivery]:
    seen: dict[str, Delivery] = {}
    for delivery in deliveries:
        seen.setdefault(stored_key(delivery), delivery)
    return list(seen.values())


def claim(session: Session, limit: int, now: datetime | None = None) -> list[Row]:
    """Lock up to ``limit`` due pending rows for this transaction (see :func:`claim_statement`).

    On PostgreSQL other workers skip the locked rows and take the next ones; on SQLite the
    transaction already holds the write lock. The rows come as plain rows with the record's
    columns (but ``headers``) and its state's as attributes: a batch is read once, with no ORM
    bookkeeping.
    """
    return session.execute(claim_statement(limit, now or utcnow(), is_postgres(session.get_bind()))).all()


def claim_statement(limit: int, now: datetime, skip_locked: bool) -> Select:
    """Due pending rows, longest due first (then by id), up to ``limit``; their states are locked.

    The order is the pending-rows index's own, so a claim reads only pending rows whatever the
    planner's statistics say (ordered by id alone, a stale estimate had it walk the primary key
    through every processed row: O(inbox) per claim); each record is then read by its id.
    """
    statement = (
        select(*CLAIMED)
        .select_from(STATES.join(RECORDS, RECORDS.c.id == STATES.c.inbox_id))
        .where(STATES.c.status == PENDING, STATES.c.next_attempt_at <= now)
        .order_by(STATES.c.next_attempt_at, STATES.c.inbox_id)
        .limit(limit)
    )
    return statement.with_for_update(skip_locked=True, of=STATES) if skip_locked else statement


def mark_processed(session: Session, ids: Sequence[int], now: datetime | None = None) -> None:
    """Mark rows processed (in the transaction that wrote their effects); erased rows stay erased."""
    if ids:
        connection = session.connection()  # Core: the batch's objects are not read again
        connection.execute(STATES.update().where(one_of(connection.dialect.name, STATES.c.inbox_id, ids),
                                                 STATES.c.status == PENDING)
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
    session.execute(STATES.update().where(STATES.c.inbox_id == record.id).values(values))


def has_due(session: Session, now: datetime | None = None) -> bool:
    """True if some pending row is due for processing."""
    statement = select(InboxState.inbox_id).where(
        InboxState.status == PENDING, InboxState.next_attempt_at <= (now or utcnow())
    ).order_by(InboxState.next_attempt_at).limit(1)  # read from the pending-rows index, as claim
    return session.scalar(statement) is not None


def counts(session: Session) -> dict[tuple[str, str], int]:
    """Row counts by (connector, status)."""
    statement = (select(InboxRecord.connector, InboxState.status, func.count())
                 .join_from(InboxState, InboxRecord, InboxRecord.id == InboxState.inbox_id)
                 .group_by(InboxRecord.connector, InboxState.status))
    return {(connector, status): n for connector, status, n in session.execute(statement)}


def replay(session: Session, connector: str | None = None, since: datetime | None = None) -> int:
    """Put failed rows back to pending with a fresh attempt count; return how many."""
    statement = update(InboxState).where(InboxState.status == FAILED)
    if connector or since:
        records = select(InboxRecord.id)
        if connector:
            records = records.where(InboxRecord.connector == connector)
        if since:
            records = records.where(InboxRecord.received_at >= since)
        statement = statement.where(InboxState.inbox_id.in_(records))
    result = session.execute(
        statement.values(status=PENDING, attempts=0, next_attempt_at=utcnow(), error=None)
    )
    return result.rowcount
