"""Profile metrics, recomputed from the timeline of each profile a batch touched.

Recomputing from activities (rather than adding deltas) keeps metrics exact whatever the
order of arrival, after merges, and after a rebuild.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import bulk
from hub.db import one_of, pieces
from hub.models import Activity, Profile
from hub.unified import ACTIVITY_TYPES

CLOSED_TICKET = {"solved", "closed", "resolved"}
#: the activity types metrics read beyond first and last seen
COUNTED = tuple(t for t in ACTIVITY_TYPES if t.startswith(("order.", "payment.", "invoice.", "ticket.")))


def compute_metrics(session: Session, profile_ids: Sequence[str], now: datetime) -> None:
    """Recompute and store ``metrics`` for these profiles (ids of surviving profiles)."""
    store_metrics(session, recomputed(session, profile_ids), now)


def store_metrics(session: Session, metrics: Mapping[str, dict], now: datetime) -> None:
    """Write each profile's ``metrics`` (by profile id) in one statement, marking it updated ``now``."""
    bulk.update(session.connection(), Profile.__table__,
                [{"id": pid, "metrics": value, "updated_at": now} for pid, value in sorted(metrics.items())],
                keys=("id",), values=("metrics", "updated_at"))


def recomputed(session: Session, profile_ids: Sequence[str],
               known_spans: Mapping[str, tuple[datetime, datetime] | None] | None = None) -> dict[str, dict]:
    """The metrics of these profiles, from their timelines.

    First and last seen come from ``known_spans`` where it has the profile (None: no activity),
    else from one aggregate; only the activities that count (orders, payments, tickets) are
    read whole, not the page views and e-mail events around them.
    """
    if not profile_ids:
        return {}
    timelines: dict[str, list] = defaultdict(list)
    known = known_spans or {}
    spans = {pid: span for pid, span in known.items() if span is not None}
    unknown = [pid for pid in profile_ids if pid not in known]
    connection = session.connection()
    dialect = connection.dialect.name
    for piece in pieces(dialect, unknown):
        for pid, first, last in connection.execute(
                select(Activity.profile_id, func.min(Activity.occurred_at), func.max(Activity.occurred_at))
                .where(one_of(dialect, Activity.profile_id, piece)).group_by(Activity.profile_id)):
            spans[pid] = (first, last)
    for piece in pieces(dialect, profile_ids):
        chunk = one_of(dialect, Activity.profile_id, piece)
        rows = connection.execute(select(Activity.profile_id, Activity.type, Activity.source, Activity.source_id,
                                         Activity.occurred_at, Activity.properties)
                                  .where(chunk, Activity.type.in_(COUNTED)))
        for row in rows:
            timelines[row.profile_id].append(row)
    return {pid: metrics_of(timelines.get(pid, ()), spans.get(pid)) for pid in profile_ids}


def widened(metrics: Mapping, times: Iterable[datetime]) -> dict | None:
    """``metrics`` with first and last seen stretched to cover ``times``: the metrics after new
    activities that count for nothing else (page views, e-mail events); None if ``metrics``
    is not a whole metrics document to start from."""
    if not whole(metrics):
        return None
    span = span_of([metrics], times)
    if span is None:
        return dict(metrics)
    return {**metrics, "first_seen_at": _iso(span[0]), "last_seen_at": _iso(span[1])}


def span_of(documents: Iterable[Mapping], times: Iterable[datetime]) -> tuple[datetime, datetime] | None:
    """First and last seen over these metrics documents and ``times``: the span of a timeline made of
    theirs and of activities at ``times`` (None if empty). The documents must be whole (see :func:`whole`)."""
    moments = [t.astimezone(timezone.utc) for t in times]
    for document in documents:
        moments += [datetime.fromisoformat(document[k]) for k in ("first_seen_at", "last_seen_at")
                    if document[k] is not None]
    return (min(moments), max(moments)) if moments else None


def whole(metrics: Any) -> bool:
    """True if ``metrics`` is a complete metrics document (one stored before a key was added is not)."""
    return isinstance(metrics, Mapping) and set(EMPTY).issubset(metrics)


def metrics_of(activities: Iterable, span: tuple[datetime, datetime] | None = None) -> dict:
    """The metrics of one timeline (rows with type, source, source_id, occurred_at, properties).

    ``span`` is the first and last time on the whole timeline, when ``activities`` holds only
    those that count. A cancelled order (an ``order.cancelled`` with the order's source and
    id) is not spending, and neither are the refunds of it (``order_id`` property), so it
    nets to nothing.
    """
    activities = list(activities)
    cancelled = {(a.source, a.source_id) for a in activities if a.type == "order.cancelled"}
    spent: dict[str, Decimal] = defaultdict(Decimal)
    paid: dict[str, Decimal] = defaultdict(Decimal)
    orders: set[str] = set()
    payments: set[str] = set()
    tickets: dict[str, tuple[datetime, bool]] = {}
    first = last = last_order = None
    currency = None
    for activity in sorted(activities, key=lambda a: (a.occurred_at, a.type, a.source_id)):
        props = activity.properties or {}
        when = activity.occurred_at
        first = when if first is None else min(first, when)
        last = when if last is None else max(last, when)
        amount, cur = _money(props)
        kind = activity.type
        if kind == "order.placed":
            orders.add(activity.source_id)
            last_order = when if last_order is None else max(last_order, when)
            if amount is not None and (activity.source, activity.source_id) not in cancelled:
                spent[cur] += amount
                currency = cur
        elif kind == "order.refunded" and amount is not None and \
                (activity.source, str(props.get("order_id"))) not in cancelled:
            spent[cur] -= amount
        elif kind in ("payment.succeeded", "invoice.paid") and amount is not None:
            payments.add(activity.source_id)
            paid[cur] += amount
        elif kind == "payment.refunded" and amount is not None:
            paid[cur] -= amount
        if kind.startswith("ticket.") and props.get("ticket_id") is not None:
            ticket = str(props["ticket_id"])
            closed = kind == "ticket.solved" or str(props.get("status", "")).lower() in CLOSED_TICKET
            if ticket not in tickets or when >= tickets[ticket][0]:
                tickets[ticket] = (when, closed)
    return {
        "orders_count": len(orders),
        "total_spent": {c: str(v) for c, v in sorted(spent.items())},
        "currency": currency,
        "last_order_at": _iso(last_order),
        "payments_count": len(payments),
        "total_paid": {c: str(v) for c, v in sorted(paid.items())},
        "open_tickets": sum(1 for _, closed in tickets.values() if not closed),
        "first_seen_at": _iso(span[0] if span else first),
        "last_seen_at": _iso(span[1] if span else last),
    }


def _money(props: dict) -> tuple[Decimal | None, str]:
    if props.get("amount") in (None, ""):
        return None, ""
    return Decimal(str(props["amount"])), str(props.get("currency") or "").upper()


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


#: the metrics of an empty timeline
EMPTY = metrics_of(())
