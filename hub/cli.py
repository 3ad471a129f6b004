"""The ``hub`` command line."""
from __future__ import annotations

import logging
import os
import sys
from datetime import datetime, timezone
from typing import Callable

import click

from hub.config import ConfigError


def _fail(message: str, code: int = 2) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def load_app():
    """Build the app from ``HUB_CONFIG``; a configuration error ends the command cleanly."""
    from hub.app import create_app
    from hub.plugins import PluginError

    try:
        return create_app()
    except (ConfigError, PluginError) as exc:
        _fail(f"hub: {exc}")


def with_hub(command: Callable) -> Callable:
    """Run ``command(hub, ...)`` inside the application context."""
    import functools

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        app = load_app()
        hub = app.extensions["tributary"]
        try:
            with app.app_context():
                return command(hub, *args, **kwargs)
        finally:
            hub.close()

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="HUB_CONFIG",
              help="Path of hub.yaml (default: $HUB_CONFIG).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(config_path: str | None, verbose: bool) -> None:
    """Tributary: one unified, up-to-date profile per customer."""
    if config_path:
        os.environ["HUB_CONFIG"] = config_path
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


# -- serving ------------------------------------------------------------------------

@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Web worker processes.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1),
              help="Threads per web worker.")
@click.option("--debug", is_flag=True, help="Flask's development server with debugging (never in production).")
@click.option("--no-migrate", is_flag=True, help="Do not upgrade the database before serving (embedded mode).")
def serve(host: str, port: int, workers: int, threads: int, debug: bool, no_migrate: bool) -> None:
    """Serve webhooks and the API (gunicorn; migrates the database first in the embedded mode)."""
    from hub import serving

    serving.serve(host=host, port=port, workers=workers, threads=threads, debug=debug,
                  migrate=not no_migrate)


@main.command()
@click.option("--burst", is_flag=True, help="Exit once the queue and the inbox are drained.")
@click.option("--metrics-port", type=int, default=None, help="Expose this worker's metrics on a port.")
def worker(burst: bool, metrics_port: int | None) -> None:
    """Drain the inbox: run jobs from Redis (needs HUB_REDIS_URL) and sweep for due rows."""
    from hub import serving

    app = load_app()
    if not app.extensions["tributary"].config.redis_url:
        _fail("hub worker needs redis_url (or HUB_REDIS_URL); without it `hub serve` runs the jobs itself")
    sys.exit(serving.work(app, burst=burst, metrics_port=metrics_port))


# -- database -----------------------------------------------------------------------

@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@with_hub
def db_upgrade(hub, revision: str) -> None:
    """Migrate the database to the newest schema (or --revision)."""
    from hub import migrate

    migrate.upgrade(hub.engine, revision)
    click.echo(f"database at revision {migrate.current_revision(hub.engine)}")


@db.command("current")
@with_hub
def db_current(hub) -> None:
    """Show the database's schema revision and the newest one available."""
    from hub import migrate

    click.echo(f"current: {migrate.current_revision(hub.engine) or 'none'}")
    click.echo(f"head:    {migrate.head_revision()}")


# -- inbox --------------------------------------------------------------------------

@main.group("inbox")
def inbox_group() -> None:
    """The raw inbox of every record received."""


@inbox_group.command("stats")
@with_hub
def inbox_stats(hub) -> None:
    """Row counts by connector and status."""
    from hub import inbox

    with hub.session() as session:
        counts = inbox.counts(session)
    if not counts:
        click.echo("inbox is empty")
        return
    statuses = ("pending", "processed", "failed")
    click.echo(f"{'connector':<20}" + "".join(f"{s:>12}" for s in statuses))
    for connector in sorted({c for c, _ in counts}):
        click.echo(f"{connector:<20}" + "".join(f"{counts.get((connector, s), 0):>12}" for s in statuses))


def _parse_since(_ctx, _param, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("expected an ISO 8601 date or time, e.g. 2026-11-01T00:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@main.command()
@click.option("--connector", default=None, help="Only rows of this connector.")
@click.option("--since", default=None, callback=_parse_since, help="Only rows received since (ISO 8601).")
@with_hub
def replay(hub, connector: str | None, since: datetime | None) -> None:
    """Re-queue failed inbox rows for processing."""
    from hub import inbox

    with hub.session.begin() as session:
        n = inbox.replay(session, connector, since)
    if n:
        hub.signal_drain()
    click.echo(f"re-queued {n} failed row{'s' if n != 1 else ''}")


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_hub
def rebuild(hub, yes: bool) -> None:
    """Drop every profile, identity, trait and activity and replay the whole inbox."""
    from tqdm import tqdm

    from hub import rebuild as rebuilding

    if not yes:
        click.confirm("Drop all derived data and replay the inbox?", abort=True)
    with tqdm(unit="rows", desc="rebuild", disable=not sys.stderr.isatty()) as bar:
        n = rebuilding.rebuild(hub, progress=bar.update)
    click.echo(f"replayed {n} inbox row{'s' if n != 1 else ''}")


@main.group()
def profiles() -> None:
    """Unified profiles: one per real person."""


@profiles.command("show")
@click.argument("identifier")
@with_hub
def profiles_show(hub, identifier: str) -> None:
    """Print the profile holding IDENTIFIER (TYPE:VALUE, an e-mail or a phone number) as JSON."""
    import json

    from hub.lookup import find_profile, parse_identifier, profile_document

    kind, value = parse_identifier(identifier)
    with hub.session() as session:
        profile = find_profile(session, hub.identity_rules, kind, value)
        if profile is None:
            _fail(f"no profile holds {kind}:{value}", 1)
        click.echo(json.dumps(profile_document(session, profile), indent=2, default=str))


@profiles.command("unmerge")
@click.argument("profile_id")
@with_hub
def profiles_unmerge(hub, profile_id: str) -> None:
    """Split PROFILE_ID out of the profile it was merged into; they stay apart afterwards."""
    from hub.unmerge import UnmergeError, unmerge

    try:
        survivor, restored = unmerge(hub, profile_id)
    except UnmergeError as exc:
        _fail(f"hub: {exc}", 1)
    click.echo(f"split {restored} from {survivor}")


# -- lifecycle and segments ---------------------------------------------------------

from hub.segments import register_cli as _register_segments  # noqa: E402

_register_segments(main)


# -- connectors ---------------------------------------------------------------------

@main.group()
def connectors() -> None:
    """Installed connectors and their configuration."""


@connectors.command("list")
@with_hub
def connectors_list(hub) -> None:
    """Every installed connector and whether it is enabled."""
    if not hub.connectors:
        click.echo("no connectors installed")
    for name, connector in hub.connectors.items():
        state = "enabled" if hub.connector(name) else "disabled"
        module = type(connector).__module__
        click.echo(f"{name:<16} {state:<9} {module}")


@connectors.command("check")
@with_hub
def connectors_check(hub) -> None:
    """Validate the configuration of every enabled connector (exit 1 if none is enabled)."""
    enabled = [name for name in hub.connectors if hub.connector(name)]
    for name in enabled:
        click.echo(f"{name}: configuration ok")
    if not enabled:
        _fail("no connector is enabled in the configuration", 1)


# -- pulling ------------------------------------------------------------------------

from hub.sync import register_cli as _register_sync  # noqa: E402

_register_sync(main)

# -- outbound webhooks --------------------------------------------------------------

from hub.deliveries import register_cli as _register_deliveries  # noqa: E402

_register_deliveries(main)
