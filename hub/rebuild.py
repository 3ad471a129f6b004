"""``hub rebuild``: drop everything derived from the inbox and replay it, in inbox order.

The change feed is not derived: the replay appends its changes again (``profile.created``,
``segment.entered``, ``trigger.fired``, ...) under the same profile ids (they derive from the
inbox rows), as each replayed batch finds them.
"""
from __future__ import annotations

import time
from typing import Callable

from sqlalchemy import delete, func, select, update

from hub import inbox
from hub.drain import drain_batch
from hub.privacy import ERASED
from hub.models import (PENDING, Activity, Identity, InboxState, Merge, Profile, SegmentMember, StageStay, Trait,
                        TriggerMatch, utcnow)
from hub.runtime import Hub

#: derived tables, children first; suppressions and sync cursors are not derived
DERIVED = (StageStay, SegmentMember, TriggerMatch, Merge, Activity, Trait, Identity, Profile)


def reset(hub: Hub) -> int:
    """Empty the derived tables and mark every inbox row pending (but erased ones); return the count."""
    with hub.session.begin() as session:
        session.execute(update(Profile).values(merged_into=None))
        for model in DERIVED:
            session.execute(delete(model))
        session.execute(update(InboxState).where(InboxState.status != ERASED).values(
            status=PENDING, attempts=0, error=None, processed_at=None, next_attempt_at=utcnow()))
        return session.scalar(select(func.count()).select_from(InboxState).where(InboxState.status != ERASED))


def rebuild(hub: Hub, progress: Callable[[int], None] = lambda n: None) -> int:
    """Reset, then drain the whole inbox in this process; return the rows replayed.

    A worker still running may take some of the rows: the rebuild waits until none is due.
    """
    replayed = reset(hub)
    while True:
        handled, _ = drain_batch(hub)
        if handled:
            progress(handled)
            continue
        with hub.session() as session:
            if not inbox.has_due(session):
                return replayed
        time.sleep(0.05)  # rows held by another worker's batch
