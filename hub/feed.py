"""Change feed retention: changes older than ``changes.retention_days`` are pruned.

Pruning deletes, oldest first, the changes created before the cutoff, except those an
active outbound subscription has not yet turned into deliveries or still has a pending
delivery for (a paused or disabled subscription does not hold the feed back); the finished
deliveries of the pruned changes go with them. The last pruned id is kept, so a reader
asking for the changes after an older id learns that it missed some (the API answers 410).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub import outbound
from hub.db import upsert_insert
from hub.models import PENDING, Change, FeedHorizon, OutboundDelivery, OutboundSubscription, utcnow
from hub.periodic import Every

#: pruning runs at most this often per process (from the sweeper)
PRUNE_EVERY_SECONDS = 3600
#: changes deleted per statement
CHUNK = 10_000
#: when this process last pruned
PRUNING = Every()


def horizon(session: Session) -> int:
    """The id of the last pruned change (0 if nothing was ever pruned)."""
    return session.scalar(select(FeedHorizon.pruned_through).where(FeedHorizon.id == 1)) or 0


def prune(hub, now: datetime | None = None) -> int:
    """Delete the changes past retention that nothing waits on; return how many."""
    days = hub.config.changes["retention_days"]
    if days is None:
        return 0
    now = now or utcnow()
    with hub.session.begin() as session:
        through = session.scalar(select(func.max(Change.id)).where(Change.created_at < now - timedelta(days=days)))
        if through is None:
            return 0
        through = min(through, _held_from(hub, session) - 1)
        if through <= horizon(session):
            return 0
        pruned = 0
        start = horizon(session)
        while start < through:
            end = min(start + CHUNK, through)
            session.execute(delete(OutboundDelivery).where(OutboundDelivery.change_id > start,
                                                           OutboundDelivery.change_id <= end))
            pruned += session.execute(delete(Change).where(Change.id > start, Change.id <= end)).rowcount
            start = end
        statement = upsert_insert(session.get_bind().dialect.name, FeedHorizon.__table__)
        session.execute(statement.on_conflict_do_update(
            index_elements=["id"], set_={"pruned_through": through, "pruned_at": now}),
            {"id": 1, "pruned_through": through, "pruned_at": now})
    return pruned


def prune_if_due(hub) -> int:
    """:func:`prune`, at most once every :data:`PRUNE_EVERY_SECONDS` in this process."""
    return prune(hub) if PRUNING.due(PRUNE_EVERY_SECONDS) else 0


def _held_from(hub, session: Session) -> int:
    """The oldest change an active subscription still needs (a huge number if none does)."""
    held = [2 ** 62]
    subscriptions = sorted(outbound.active(hub, session))
    if subscriptions:
        cursors = dict(session.execute(select(OutboundSubscription.name, OutboundSubscription.last_change_id)
                                       .where(OutboundSubscription.name.in_(subscriptions))).all())
        held += [cursors[name] + 1 for name in subscriptions if name in cursors]  # others start later
        pending = session.scalar(select(func.min(OutboundDelivery.change_id)).where(
            OutboundDelivery.status == PENDING, OutboundDelivery.subscription.in_(subscriptions)))
        if pending is not None:
            held.append(pending)
    return min(held)
