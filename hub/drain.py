"""Draining: claim a batch of inbox rows, run the pipeline, mark them, in one transaction."""
from __future__ import annotations

import contextlib
import gc
import logging
import time
from typing import Iterator, Sequence

from sqlalchemy import Row
from sqlalchemy.orm import Session

from hub import inbox, metrics, statistics
from hub.models import utcnow
from hub.outbound import subscriptions
from hub.queue import DRAIN_JOB, quietly as _queue_call
from hub.runtime import Hub

log = logging.getLogger(__name__)


def drain_batch(hub: Hub) -> tuple[int, bool]:
    """Process one batch; return (rows handled, whether the batch was full)."""
    size = hub.config.inbox["batch_size"]
    started = time.perf_counter()
    with collector_paused(), hub.session() as session, session.begin():
        records = inbox.claim(session, size)
        if not records:
            return 0, False
        if len(records) == size:
            _ask_for_help(hub)
        done = _process(hub, session, records)
        now = utcnow()
        inbox.mark_processed(session, [r.id for r in done], now)
    if done and subscriptions(hub):
        hub.signal_deliver()  # the batch may have added changes: send them to the subscribers
    statistics.refresh_if_due(hub.engine)  # the batch grew the tables its successors read
    metrics.DRAIN_BATCH_SIZE.observe(len(records))
    metrics.DRAIN_BATCH_SECONDS.observe(time.perf_counter() - started)
    for record in done:
        metrics.ACCEPT_TO_PROCESSED.observe((now - record.received_at).total_seconds())
    metrics.DRAINED_ROWS.labels("processed").inc(len(done))
    if len(done) != len(records):
        metrics.DRAINED_ROWS.labels("retried").inc(len(records) - len(done))
    return len(records), len(records) == size


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector off while a batch runs.

    A batch makes a few hundred thousand objects (parsed bodies, records, rows) that all live
    until it ends, then reference counting frees them. Meanwhile every allocation burst would
    start a collector pass over them, and the full passes, as the batch's survivors swell the
    oldest generation, walk them all again (about a tenth of a worker's CPU at 100k records).
    What cycles a batch leaves go at the first pass after it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _process(hub: Hub, session: Session, records: Sequence[Row]) -> list[Row]:
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


def _ask_for_help(hub: Hub) -> None:
    """A full batch means a backlog: let an idle worker drain beside this one."""
    _queue_call(hub.queue.enqueue_helper)


def drain(hub: Hub) -> int:
    """The main drain, run while holding the drain lease (see :mod:`hub.queue`).

    Drains batches, lingering briefly after a small one so rows accumulate, until a claim
    comes back empty; then gives the lease back and looks once more for rows committed
    meanwhile. After the time budget it queues its successor (keeping the lease) so other
    jobs get a turn. Returns the number of rows handled.
    """
    queue, settings = hub.queue, hub.config.inbox
    deadline = time.monotonic() + settings["drain_time_budget_seconds"]
    total = 0
    while True:
        handled, full = drain_batch(hub)
        total += handled
        if not handled:
            _queue_call(queue.release_lease)  # if Redis is away, the lease expires by itself
            with hub.session() as session:
                due = inbox.has_due(session)
            if due and _queue_call(queue.take_lease):
                continue
            return total
        if time.monotonic() >= deadline:
            _queue_call(queue.enqueue, DRAIN_JOB)  # if Redis is away, a sweep re-signals
            return total
        _queue_call(queue.renew_lease)
        if not full:
            time.sleep(settings["linger_seconds"])


def drain_helper(hub: Hub) -> int:
    """A helper drain for a backlog: batches until one is not full; holds no lease."""
    total = 0
    while True:
        handled, full = drain_batch(hub)
        total += handled
        if not full:
            return total
