"""Job functions run by RQ workers or the embedded queue; they take ids, never ORM objects."""
from __future__ import annotations

from hub import drain as draining
from hub import evaluation, feed, inbox, outbound
from hub.runtime import current_hub


def drain() -> int:
    """Drain pending inbox rows in batches (holding the drain lease); return rows handled."""
    return draining.drain(current_hub())


def drain_helper() -> int:
    """Help drain a backlog beside the main drain; return how many rows were handled."""
    return draining.drain_helper(current_hub())


def deliver() -> int:
    """Send the change feed to the outbound subscriptions (holding the delivery lease); return attempts."""
    return outbound.deliver(current_hub())


def sweep() -> bool:
    """Re-signal the workers if due rows wait in the inbox or outbound work is due (return whether any
    is); prune the change feed past its retention now and then; re-evaluate time-based segments and
    triggers every ``segments_refresh_minutes``."""
    hub = current_hub()
    with hub.session() as session:
        due = inbox.has_due(session)
        sending = outbound.has_work(hub, session)
    if due:
        hub.signal_drain()
    if sending:
        hub.signal_deliver()
    feed.prune_if_due(hub)
    if evaluation.refresh_if_due(hub) and outbound.subscriptions(hub):  # send the refresh's changes
        hub.signal_deliver()
    return due or sending
