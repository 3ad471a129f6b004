"""Outbound webhooks: the change feed pushed to each subscription of ``outbound:`` in ``hub.yaml``.

Dispatch turns the changes past a subscription's cursor into deliveries (one per change its
``events`` select) and advances the cursor in the same transaction. A subscription seen for
the first time starts after the changes made before the hub process that dispatches for it
started (with it in its configuration): earlier changes are not sent. Sending claims one due delivery at a time
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``), counts the attempt and pushes its next attempt past
a lease, commits, POSTs it signed with the Standard Webhooks scheme, then stores the outcome.
A worker killed mid-send leaves the delivery to be sent again once the lease runs out (at
least once); the attempt count fences off a worker whose lease ran out. A delivery waits
while an earlier one of the same subscription and profile is pending, so each profile's
changes arrive in order while other profiles' proceed.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

import requests
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, aliased

from hub import __version__, metrics
from hub.db import is_postgres, upsert_insert
from hub.models import FAILED, PENDING, SUCCEEDED, Change, OutboundDelivery, OutboundSubscription, utcnow
from hub.queue import DELIVER_JOB, DELIVER_LEASE, quietly
from hub.signing import sign
from hub.sync import retry_after

#: seconds to wait before each attempt: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 28 h)
SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(SCHEDULE)
#: a receiver's Retry-After is honoured when longer than the schedule, up to this
MAX_RETRY_AFTER = 86400
#: how long one delivery job sends before it hands over to a successor
BUDGET_SECONDS = 5.0
DISPATCH_CHUNK = 500
ERROR_LIMIT = 500

Clock = Callable[[], datetime]


def subscriptions(hub) -> dict[str, Mapping[str, Any]]:
    """The subscriptions enabled in the configuration, by name."""
    return {s["name"]: s for s in hub.config.outbound if s["enabled"]}


def active(hub, session: Session) -> dict[str, Mapping[str, Any]]:
    """The enabled subscriptions that no receiver has disabled (410 Gone)."""
    subs = subscriptions(hub)
    if not subs:
        return {}
    disabled = set(session.scalars(select(OutboundSubscription.name).where(
        OutboundSubscription.name.in_(subs), OutboundSubscription.disabled_at.is_not(None))))
    return {name: s for name, s in subs.items() if name not in disabled}


def message_id(subscription: str, change_id: int) -> str:
    """The ``webhook-id`` of one change sent to one subscription: the same on every attempt."""
    return f"msg_{subscription}_{change_id}"


def payload(change: Change) -> bytes:
    """The JSON body sent for a change."""
    stamp = change.created_at.isoformat().replace("+00:00", "Z")
    document = {"type": change.type, "timestamp": stamp, "data": {"profile_id": change.profile_id, **change.data}}
    return json.dumps(document, separators=(",", ":")).encode()


# -- dispatch -----------------------------------------------------------------------

def behind(session: Session, subs: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The subscriptions with changes past their cursor, or with no cursor yet."""
    if not subs:
        return {}
    cursors = dict(session.execute(select(OutboundSubscription.name, OutboundSubscription.last_change_id)
                                   .where(OutboundSubscription.name.in_(subs))).all())
    newest = session.scalar(select(func.max(Change.id))) or 0
    return {name: sub for name, sub in subs.items() if cursors.get(name, -1) < newest}


def dispatch(hub, clock: Clock = utcnow) -> int:
    """Turn the changes past each active subscription's cursor into deliveries; return how many."""
    with hub.session() as session:
        subs = behind(session, active(hub, session))
    created = 0
    for name, sub in sorted(subs.items()):
        more = True
        while more:
            with hub.session.begin() as session:
                count, more = _dispatch_chunk(session, name, sub["events"], clock(), hub.started_at)
            created += count
    return created


def _dispatch_chunk(session: Session, name: str, events: list[str], now: datetime,
                    started_at: datetime) -> tuple[int, bool]:
    """Deliveries for the next chunk of changes; the cursor row is locked until commit."""
    dialect = session.get_bind().dialect.name
    start = select(func.coalesce(func.max(Change.id), 0)).where(Change.created_at < started_at).scalar_subquery()
    session.execute(upsert_insert(dialect, OutboundSubscription.__table__)
                    .values(name=name, last_change_id=start, created_at=now)
                    .on_conflict_do_nothing(index_elements=["name"]))
    statement = select(OutboundSubscription).where(OutboundSubscription.name == name)
    state = session.scalars(statement.with_for_update() if dialect == "postgresql" else statement).one()
    if state.disabled_at is not None:
        return 0, False
    changes = session.execute(select(Change.id, Change.type, Change.profile_id)
                              .where(Change.id > state.last_change_id).order_by(Change.id)
                              .limit(DISPATCH_CHUNK)).all()
    if not changes:
        return 0, False
    rows = [{"subscription": name, "change_id": c.id, "type": c.type, "profile_id": c.profile_id,
             "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
            for c in changes if "*" in events or c.type in events]
    if rows:
        session.execute(upsert_insert(dialect, OutboundDelivery.__table__)
                        .on_conflict_do_nothing(index_elements=["subscription", "change_id"]), rows)
    state.last_change_id = changes[-1].id
    return len(rows), len(changes) == DISPATCH_CHUNK


# -- sending ------------------------------------------------------------------------

def _sendable(names: list[str], now: datetime) -> list:
    """Conditions of a delivery that may be sent now: due, and first of its profile in line."""
    d, earlier = OutboundDelivery, aliased(OutboundDelivery)
    waiting = exists().where(earlier.subscription == d.subscription, earlier.profile_id == d.profile_id,
                             earlier.status == PENDING, earlier.change_id < d.change_id)
    return [d.subscription.in_(names), d.status == PENDING, d.next_attempt_at <= now, ~waiting]


def lease_seconds(sub: Mapping[str, Any]) -> float:
    """How long a claim keeps a delivery from other workers: well past the request timeout."""
    return 3 * sub["timeout_seconds"] + 5


def claim(session: Session, subs: Mapping[str, Mapping[str, Any]], now: datetime) -> OutboundDelivery | None:
    """Take the next sendable delivery: count the attempt and lease it (commit before sending)."""
    statement = (select(OutboundDelivery).where(*_sendable(sorted(subs), now))
                 .order_by(OutboundDelivery.next_attempt_at, OutboundDelivery.id).limit(1))
    if is_postgres(session.get_bind()):
        statement = statement.with_for_update(skip_locked=True, of=OutboundDelivery)
    delivery = session.scalar(statement)
    if delivery is not None:
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + timedelta(seconds=lease_seconds(subs[delivery.subscription]))
    return delivery


@dataclass(frozen=True)
class Answer:
    """What one attempt got: the HTTP status (None without an answer), an error, a Retry-After."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer: delivered."""
        return self.status is not None and 200 <= self.status < 300


def post(http: requests.Session, sub: Mapping[str, Any], delivery: OutboundDelivery, change: Change,
         now: datetime) -> Answer:
    """POST one delivery, signed; never raises for what the receiver or the network does."""
    body, msg_id, stamp = payload(change), message_id(delivery.subscription, delivery.change_id), int(now.timestamp())
    headers = {"content-type": "application/json", "user-agent": f"Tributary/{__version__}",
               "webhook-id": msg_id, "webhook-timestamp": str(stamp),
               "webhook-signature": sign(sub["secret"], msg_id, stamp, body)}
    timeout = sub["timeout_seconds"]
    try:
        with http.post(sub["url"], data=body, headers=headers, timeout=timeout, allow_redirects=False,
                       stream=True) as response:
            if 200 <= response.status_code < 300:
                return Answer(response.status_code)
            text = response.raw.read(ERROR_LIMIT, decode_content=True).decode("utf-8", "replace")
            return Answer(response.status_code, f"HTTP {response.status_code}: {text}".strip(),
                          retry_after(response.headers.get("Retry-After"), now))
    except requests.Timeout as exc:  # no URL in the message: it may carry a token
        return Answer(None, f"{type(exc).__name__}: no answer within {timeout:g} s")
    except requests.RequestException as exc:
        return Answer(None, f"{type(exc).__name__}: the request could not be sent")


def record(session: Session, delivery_id: int, attempt: int, answer: Answer, now: datetime) -> str:
    """Store an attempt's outcome; return it (succeeded, retry, failed, gone, or stale for a lost lease)."""
    values: dict[str, Any] = {"last_status": answer.status, "last_error": answer.error}
    if answer.ok:
        outcome = "succeeded"
        values.update(status=SUCCEEDED, delivered_at=now)
    elif answer.status == 410:
        outcome = "gone"
        values.update(status=FAILED)
    elif attempt >= MAX_ATTEMPTS:
        outcome = "failed"
        values.update(status=FAILED)
    else:
        outcome = "retry"
        wait = max(SCHEDULE[attempt], min(answer.retry_after or 0, MAX_RETRY_AFTER))
        values.update(next_attempt_at=now + timedelta(seconds=wait))
    updated = session.execute(update(OutboundDelivery).where(
        OutboundDelivery.id == delivery_id, OutboundDelivery.attempts == attempt,
        OutboundDelivery.status == PENDING).values(**values).returning(
        OutboundDelivery.subscription, OutboundDelivery.change_id)).first()
    if updated is None:
        return "stale"
    if outcome == "gone":
        session.execute(update(OutboundSubscription).where(
            OutboundSubscription.name == updated.subscription, OutboundSubscription.disabled_at.is_(None))
            .values(disabled_at=now, disabled_reason=f"the receiver answered 410 Gone to change {updated.change_id}"))
    return outcome


def send_due(hub, clock: Clock = utcnow, deadline: float | None = None) -> tuple[int, bool]:
    """Dispatch, then send due deliveries one by one; return (attempts made, whether the deadline stopped it)."""
    dispatch(hub, clock)
    attempts = 0
    with requests.Session() as http:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return attempts, True
            with hub.session.begin() as session:
                subs = active(hub, session)
                delivery = claim(session, subs, clock()) if subs else None
                if delivery is None:
                    return attempts, False
                change = session.get(Change, delivery.change_id)
            answer = post(http, subs[delivery.subscription], delivery, change, clock())
            with hub.session.begin() as session:
                outcome = record(session, delivery.id, delivery.attempts, answer, clock())
            metrics.OUTBOUND_DELIVERIES.labels(delivery.subscription, outcome).inc()
            attempts += 1
            quietly(hub.queue.renew_lease, DELIVER_LEASE)


def has_work(hub, session: Session, now: datetime | None = None) -> bool:
    """True if a change waits to be dispatched or a delivery may be sent now."""
    subs = active(hub, session)
    if not subs:
        return False
    if behind(session, subs):
        return True
    sendable = select(OutboundDelivery.id).where(*_sendable(sorted(subs), now or utcnow())).limit(1)
    return session.scalar(sendable) is not None


def deliver(hub, clock: Clock = utcnow) -> int:
    """The delivery job, run holding the delivery lease (see :mod:`hub.queue`); return attempts made.

    Sends until nothing is due, gives the lease back and looks once more (taking it again
    if work came meanwhile); after its time budget it queues its successor, keeping the lease.
    """
    queue = hub.queue
    deadline = time.monotonic() + BUDGET_SECONDS
    total = 0
    while True:
        attempts, stopped = send_due(hub, clock, deadline)
        total += attempts
        if stopped:
            quietly(queue.enqueue, DELIVER_JOB)  # if Redis is away, the lease expires and a sweep re-signals
            return total
        quietly(queue.release_lease, DELIVER_LEASE)
        with hub.session() as session:
            more = has_work(hub, session, clock())
        if not (more and quietly(queue.take_lease, DELIVER_LEASE)):
            return total
