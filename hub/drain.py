"""Draining: claim a batch of inbox rows, run the pipeline, mark them, in one transaction."""
from __future__ import annotations

import logging
import time
from typing import Sequence

from sqlalchemy.orm import Session

from hub import inbox, metrics
from hub.models import InboxRecord, utcnow
from hub.runtime import Hub

log = logging.getLogger(__name__)


def drain_batch(hub: Hub) -> tuple[int, bool]:
    """Process one batch; return (rows handled, whether the batch was full)."""
    size = hub.config.inbox["batch_size"]
    started = time.perf_counter()
    with hub.session() as session, session.begin():
        records = inbox.claim(session, size)
        if not records:
            return 0, False
        if len(records) == size:
            hub.signal_drain()  # more are waiting: let an idle worker take the next batch
        done = _process(hub, session, records)
        now = utcnow()
        inbox.mark_processed(session, [r.id for r in done], now)
    metrics.DRAIN_BATCH_SIZE.observe(len(records))
    metrics.DRAIN_BATCH_SECONDS.observe(time.perf_counter() - started)
    for record in done:
        metrics.ACCEPT_TO_PROCESSED.observe((now - record.received_at).total_seconds())
    metrics.DRAINED_ROWS.labels("processed").inc(len(done))
    if len(done) != len(records):
        metrics.DRAINED_ROWS.labels("retried").inc(len(records) - len(done))
    return len(records), len(records) == size


def _process(hub: Hub, session: Session, records: Sequence[InboxRecord]) -> list[InboxRecord]:
    """Run the pipeline on the whole batch; if it fails, row by row to isolate the culprit."""
    if len(records) > 1:
        try:
            with session.begin_nested():
                hub.pm.hook.process_batch(hub=hub, session=session, records=records)
            return list(records)
        except Exception:
            log.info("batch of %d failed; retrying its rows one by one", len(records))
    done = []
    settings = hub.config.inbox
    for record in records:
        try:
            with session.begin_nested():
                hub.pm.hook.process_batch(hub=hub, session=session, records=[record])
            done.append(record)
        except Exception as exc:
            log.warning("inbox row %s failed: %s", record.id, type(exc).__name__)
            inbox.mark_attempt_failed(
                session, record, f"{type(exc).__name__}: {exc}", settings["max_attempts"],
                settings["backoff_seconds"], settings["backoff_max_seconds"],
            )
    return done


def drain(hub: Hub) -> int:
    """Drain batches until the inbox is empty or the time budget is spent; re-signal if more remain."""
    hub.queue.drain_started()
    deadline = time.monotonic() + hub.config.inbox["drain_time_budget_seconds"]
    total = 0
    while True:
        handled, full = drain_batch(hub)
        total += handled
        if not full:
            return total
        if time.monotonic() >= deadline:
            hub.signal_drain()
            return total
