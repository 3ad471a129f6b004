"""``hub deliveries``: the outbound delivery log, and re-sending what failed."""
from __future__ import annotations

from datetime import datetime

import click

# SQLAlchemy and the models load on first use: ``hub --help`` stays fast
STATUSES = ("pending", "succeeded", "failed")


def log_rows(session, subscription: str | None = None, status: str | None = None, limit: int = 50) -> list:
    """The last ``limit`` deliveries (filtered), oldest first."""
    from sqlalchemy import select

    from hub.models import OutboundDelivery

    statement = select(OutboundDelivery).order_by(OutboundDelivery.id.desc()).limit(limit)
    if subscription:
        statement = statement.where(OutboundDelivery.subscription == subscription)
    if status:
        statement = statement.where(OutboundDelivery.status == status)
    return list(reversed(session.scalars(statement).all()))


def disabled(session) -> list:
    """Subscriptions a receiver disabled (410 Gone), by name."""
    from sqlalchemy import select

    from hub.models import OutboundSubscription

    return list(session.scalars(select(OutboundSubscription).where(OutboundSubscription.disabled_at.is_not(None))
                                .order_by(OutboundSubscription.name)))


def replay(session, subscription: str | None = None, since: datetime | None = None) -> int:
    """Put failed deliveries (created since ``since``) back to pending with a fresh attempt count."""
    from sqlalchemy import update

    from hub.models import FAILED, PENDING, OutboundDelivery, utcnow

    statement = update(OutboundDelivery).where(OutboundDelivery.status == FAILED)
    if subscription:
        statement = statement.where(OutboundDelivery.subscription == subscription)
    if since:
        statement = statement.where(OutboundDelivery.created_at >= since)
    return session.execute(statement.values(status=PENDING, attempts=0, next_attempt_at=utcnow())).rowcount


def enable_subscriptions(session, subscription: str | None = None) -> list[str]:
    """Clear the disabled state (all subscriptions, or one); return the names enabled again."""
    from sqlalchemy import update

    from hub.models import OutboundSubscription

    statement = update(OutboundSubscription).where(OutboundSubscription.disabled_at.is_not(None))
    if subscription:
        statement = statement.where(OutboundSubscription.name == subscription)
    result = session.execute(statement.values(disabled_at=None, disabled_reason=None)
                             .returning(OutboundSubscription.name))
    return sorted(result.scalars())


def _line(delivery) -> str:
    when = delivery.last_attempt_at or delivery.created_at
    last = delivery.last_status or (delivery.last_error or "-").split(":")[0]
    return (f"{when:%Y-%m-%d %H:%M:%S}  {delivery.subscription:<16} {delivery.change_id:>8}  {delivery.type:<16} "
            f"{delivery.profile_id or '-':<36}  {delivery.status:<9} {delivery.attempts:>8}  {last}")


HEADER = (f"{'time (UTC)':<19}  {'subscription':<16} {'change':>8}  {'type':<16} {'profile':<36}  "
          f"{'status':<9} {'attempts':>8}  last")


def register_cli(main: click.Group) -> None:
    """Add ``hub deliveries [--subscription S] [--status X] [--limit N]`` and ``hub deliveries replay``."""
    from hub.cli import _parse_since, with_hub

    @main.group("deliveries", invoke_without_command=True)
    @click.option("--subscription", default=None, metavar="S", help="Only this subscription's deliveries.")
    @click.option("--status", type=click.Choice(STATUSES), default=None, help="Only deliveries in this status.")
    @click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
                  help="How many of the latest deliveries to show.")
    @click.pass_context
    def deliveries_group(ctx: click.Context, subscription: str | None, status: str | None, limit: int) -> None:
        """Outbound webhooks: the delivery log (latest last), and `replay` to re-send failed ones."""
        if ctx.invoked_subcommand is None:
            show_log(subscription, status, limit)

    @with_hub
    def show_log(hub, subscription: str | None, status: str | None, limit: int) -> None:
        with hub.session() as session:
            rows, gone = log_rows(session, subscription, status, limit), disabled(session)
        click.echo(HEADER if rows else "no deliveries")
        for delivery in rows:
            click.echo(_line(delivery))
        for state in gone:
            click.echo(f"{state.name}: disabled since {state.disabled_at:%Y-%m-%d %H:%M:%S} ({state.disabled_reason}); "
                       f"`hub deliveries replay --subscription {state.name} --enable` enables it again")

    @deliveries_group.command("replay")
    @click.option("--subscription", default=None, metavar="S", help="Only this subscription's deliveries.")
    @click.option("--since", default=None, callback=_parse_since,
                  help="Only deliveries created since (ISO 8601).")
    @click.option("--enable", is_flag=True,
                  help="Also enable again the subscription(s) a receiver disabled with 410 Gone.")
    @with_hub
    def deliveries_replay(hub, subscription: str | None, since: datetime | None, enable: bool) -> None:
        """Re-queue failed deliveries to be sent again (same webhook-id), oldest change first."""
        with hub.session.begin() as session:
            enabled = enable_subscriptions(session, subscription) if enable else []
            n = replay(session, subscription, since)
            still = [s.name for s in disabled(session) if not subscription or s.name == subscription]
        for name in enabled:
            click.echo(f"enabled {name} again")
        click.echo(f"re-queued {n} failed deliver{'ies' if n != 1 else 'y'}")
        for name in still:
            click.echo(f"{name} is disabled (410 Gone): its deliveries wait until `--enable`", err=True)
        if n or enabled:
            hub.signal_deliver()
