"""``hub sync``: pull a connector's API streams into the inbox, page by page, resumably.

A stream's place is its :class:`~hub.models.SyncCursor` row, with the state
``{"cursor": high-water mark, "next": {"url", "params"}, "started_cursor": ...}`` (a windowed
stream keeps ``"done"``, the end of its last finished range, and ``"range"`` while inside one).
A page's records and the state that follows them commit in one transaction, so a run
that dies resumes at the first page it did not store: no gap, no duplicate. ``cursor``
only moves forward; ``next`` is set while a run is under way and cleared at its end.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

import click

from hub.connector import Delivery, Stream, Window
from hub.paginators import field_at

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from hub.connector import Connector
    from hub.runtime import Hub

# requests, SQLAlchemy and the models load on first use: ``hub --help`` stays fast

log = logging.getLogger(__name__)


class NotSyncable(LookupError):
    """Nothing to pull: the connector is unknown or disabled, has no API base or no such stream."""


class StreamError(Exception):
    """One stream cannot go on: an HTTP error, retries exhausted, or an unreadable answer."""


class SyncError(Exception):
    """Some streams failed: ``errors`` by stream, ``stored`` the new records of every stream."""

    def __init__(self, errors: dict[str, str], stored: dict[str, int]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors
        self.stored = stored


@dataclass(frozen=True)
class Retry:
    """How one API call is retried: exponential backoff with full jitter, and its timeout."""

    max_retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    timeout: float = 30.0
    jitter: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def delay(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (0-based): uniform in [0, backoff * 2**retry]."""
        return self.jitter() * min(self.backoff_max, self.backoff * 2 ** retry)


def sync(hub: Hub, connector_name: str, stream: str | None = None, full: bool = False,
         progress: Callable[[int], Any] | None = None, *,
         sleep: Callable[[float], Any] = time.sleep, retry: Retry = Retry(),
         clock: Callable[[], datetime] | None = None) -> dict[str, int]:
    """Pull the connector's streams (or only ``stream``); return the new inbox rows per stream.

    A stream resumes an interrupted run from its stored ``next`` page; otherwise it asks
    only for records updated since its high-water mark, or for everything with ``full``
    (which also abandons an interrupted run). ``progress`` is called with each page's
    record count; ``clock`` (default :func:`now`) gives the time windowed streams walk up to. Raises
    :class:`NotSyncable` before any call, and :class:`SyncError` once every stream ran if
    some of them failed.
    """
    found = hub.connector(connector_name)
    if found is None:
        reason = "disabled in the configuration" if connector_name in hub.connectors else "not installed"
        raise NotSyncable(f"connector {connector_name!r} is {reason}")
    connector, settings = found
    streams = connector.streams(settings)
    names = ", ".join(s.name for s in streams) or "none"
    if stream is not None:
        streams = [s for s in streams if s.name == stream]
        if not streams:
            raise NotSyncable(f"connector {connector_name!r} has no stream {stream!r} (streams: {names})")
    if not streams:
        raise NotSyncable(f"connector {connector_name!r} declares no streams")
    base = connector.api_base(settings)
    if not base:
        raise NotSyncable(f"connector {connector_name!r} needs api_base in its configuration")
    stored: dict[str, int] = {}
    errors: dict[str, str] = {}
    with connector.http_session(settings) as http:
        client = _Client(http, connector, retry, sleep)
        for each in streams:
            run = _StreamRun(hub, connector_name, each, base, client, progress, clock or now)
            try:
                run.pull(full)
            except StreamError as exc:
                errors[each.name] = str(exc)
                log.error("sync %s/%s stopped: %s", connector_name, each.name, exc)
            stored[each.name] = run.stored
    if errors:
        raise SyncError(errors, stored)
    return stored


class _StreamRun:
    """One stream's pull: page after page, each stored with the state that follows it."""

    def __init__(self, hub: Hub, connector: str, stream: Stream, base: str, client: _Client,
                 progress: Callable[[int], Any] | None, clock: Callable[[], datetime]):
        self.hub, self.connector, self.stream, self.client, self.clock = hub, connector, stream, client, clock
        self.url = base.rstrip("/") + "/" + stream.path.lstrip("/")
        self.progress = progress
        self.stored = 0

    def pull(self, full: bool) -> None:
        """Fetch and store pages until the paginator says the stream (or its last range) has ended."""
        stream = self.stream
        state = _load_state(self.hub, self.connector, stream.name)
        self.high, self.done = state.get("cursor"), None if full else state.get("done")
        resume = None if full else state.get("next")
        if resume:
            log.info("sync %s/%s resumes at %s", self.connector, stream.name, _safe_url(resume["url"]))
        if stream.window:
            self._pull_ranges(stream.window, state, resume)
            return
        if resume:
            request = (resume["url"], resume["params"])
            started = state.get("started_cursor")
        else:
            started = None if full else self.high
            params = dict(stream.params)
            if started is not None and stream.cursor_param:
                params[stream.cursor_param] = _param_value(started, stream.cursor_format)
            request = (self.url, stream.paginator.first(params))
        self._pages(request, {"started_cursor": started})

    def _pull_ranges(self, window: Window, state: dict, resume: dict | None) -> None:
        """Walk consecutive ranges of at most ``window.length`` up to now (see :class:`Window`)."""
        now = self.clock().replace(microsecond=0)
        if resume:
            start, end = (datetime.fromisoformat(t) for t in state["range"])
            self._pages((resume["url"], resume["params"]), {"range": state["range"]}, end.isoformat())
            start = end - window.overlap  # that range ended a while ago: records may have come late
        elif self.done:
            start = datetime.fromisoformat(self.done) - window.overlap
        else:
            start = now - window.backfill
        while start < now:
            end = min(start + window.length, now)
            params = {**self.stream.params, window.start_param: window.format(start),
                      window.end_param: window.format(end)}
            self._pages((self.url, self.stream.paginator.first(params)), {"range": [start.isoformat(), end.isoformat()]},
                        end.isoformat())
            start = end

    def _pages(self, request: tuple[str, dict] | None, resume_state: dict, range_end: str | None = None) -> None:
        """Fetch and store pages from ``request`` on; ``resume_state`` is stored while pages remain."""
        stream = self.stream
        while request is not None:
            url, params = request
            response = self.client.get(url, params)
            try:
                body = response.json()
            except ValueError:
                raise StreamError(f"GET {_safe_url(response.url)} did not answer JSON") from None
            records = field_at(body, stream.records_path)
            if not isinstance(records, list):
                raise StreamError(f"GET {_safe_url(response.url)}: no list at {stream.records_path!r}")
            deliveries = []
            for record in records:
                delivery, cursor = self._delivery(record)
                deliveries.append(delivery)
                if cursor is not None and (self.high is None or _moment(cursor) > _moment(self.high)):
                    self.high = cursor
            request = stream.paginator.next(url, params, response, body, records)
            if request == (url, params):
                raise StreamError(f"GET {_safe_url(url)}: the next page is this page again")
            if request is None and range_end is not None:
                self.done = range_end
            state: dict[str, Any] = {"cursor": self.high}
            if self.done:
                state["done"] = self.done
            if request is not None:
                state.update(next={"url": request[0], "params": request[1]}, **resume_state)
            new = _store_page(self.hub, self.connector, stream.name, deliveries, state)
            self.stored += new
            if new:
                self.hub.signal_drain()
            if self.progress:
                self.progress(len(records))

    def _delivery(self, record: Any) -> tuple[Delivery, Any]:
        """The inbox delivery for one record, and the record's cursor value (or None)."""
        stream = self.stream
        key = field_at(record, stream.primary_key)
        if key is None:
            raise StreamError(f"stream {stream.name!r}: a record has no {stream.primary_key!r}")
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        cursor = field_at(record, stream.cursor_field) if stream.cursor_field else None
        moment = None
        if cursor is not None:
            try:
                moment = _moment(cursor)
            except (TypeError, ValueError, OverflowError):
                raise StreamError(f"stream {stream.name!r}: record {key}: {stream.cursor_field} "
                                  f"is not a time: {cursor!r}") from None
        version = cursor if cursor is not None else hashlib.sha256(body).hexdigest()
        return Delivery(key=f"pull:{stream.name}:{key}:{version}", body=body, topic=stream.topic,
                        occurred_at=moment), cursor


class _Client:
    """GET with a timeout, the connector's throttle, and retries of 429, 5xx and network errors."""

    def __init__(self, http: requests.Session, connector: Connector, retry: Retry,
                 sleep: Callable[[float], Any]):
        self.http, self.connector, self.retry, self.sleep = http, connector, retry, sleep
        self.pause = 0.0

    def get(self, url: str, params: dict) -> requests.Response:
        """The successful answer to ``GET url?params``; raise :class:`StreamError` otherwise."""
        where = _safe_url(url)
        import requests

        retried = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
        for attempt in itertools.count():
            if self.pause > 0:
                self.sleep(self.pause)
            self.pause = 0.0
            wait = None
            try:
                response = self.http.get(url, params=params, timeout=self.retry.timeout)
            except retried as exc:
                problem = type(exc).__name__
            else:
                status = response.status_code
                if status < 400:
                    self.pause = self.connector.throttle(response)
                    return response
                if status != 429 and status < 500:
                    raise StreamError(f"GET {where} answered {status} {response.reason or ''}".rstrip())
                problem = f"HTTP {status}"
                wait = retry_after(response.headers.get("Retry-After"))
            if attempt >= self.retry.max_retries:
                raise StreamError(f"GET {where} failed after {attempt + 1} attempts (last: {problem})")
            log.warning("GET %s: %s; retrying", where, problem)
            self.sleep(wait if wait is not None else self.retry.delay(attempt))
        raise AssertionError("unreachable")


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(timezone.utc)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delay seconds or HTTP date), or None."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)  # Shopify sends "2.0"
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _moment(value: Any) -> datetime:
    """A cursor value (ISO 8601 text, or unix seconds as a number or digits) as a UTC time."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a time")
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(float(value), timezone.utc)
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def _param_value(cursor: Any, cursor_format: str) -> str:
    """The cursor as the stream's query wants it: unix seconds, or ISO (the record's own text)."""
    if cursor_format == "unix":
        return str(int(_moment(cursor).timestamp()))
    if isinstance(cursor, str) and not cursor.isdigit():
        return cursor
    return _moment(cursor).isoformat().replace("+00:00", "Z")


def _safe_url(url: str) -> str:
    """The URL without credentials or query string, fit for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _load_state(hub: Hub, connector: str, stream: str) -> dict[str, Any]:
    """The stored state of a stream ({} before its first page)."""
    from hub.models import SyncCursor

    with hub.session() as session:
        row = session.get(SyncCursor, (connector, stream))
        return dict(row.state) if row else {}


def _store_page(hub: Hub, connector: str, stream: str, deliveries: list[Delivery],
                state: dict[str, Any]) -> int:
    """Store a page's records and the stream's next state in one transaction; count new rows."""
    from hub import inbox
    from hub.models import PULLED, SyncCursor

    with hub.session.begin() as session:
        ids = inbox.store(session.connection(), connector, deliveries, kind=PULLED)
        row = session.get(SyncCursor, (connector, stream))
        if row is None:
            session.add(SyncCursor(connector=connector, stream=stream, state=state))
        else:
            row.state = state
    return len(ids)


def register_cli(main: click.Group) -> None:
    """Add ``hub sync CONNECTOR [--stream S] [--full]`` to the ``main`` command group."""

    @main.command("sync")
    @click.argument("connector")
    @click.option("--stream", default=None, metavar="S", help="Pull only this stream.")
    @click.option("--full", is_flag=True,
                  help="Ask for every record, ignoring the stored cursor and any interrupted run.")
    def sync_command(connector: str, stream: str | None, full: bool) -> None:
        """Pull CONNECTOR's API streams into the inbox, only what changed since the last run.

        An interrupted run resumes at the first page it did not store.
        """
        from tqdm import tqdm

        from hub.cli import load_app

        app = load_app()
        hub = app.extensions["tributary"]
        failed: dict[str, str] = {}
        try:
            with app.app_context(), tqdm(unit="records", desc=f"sync {connector}",
                                         disable=not sys.stderr.isatty()) as bar:
                try:
                    stored = sync(hub, connector, stream, full, progress=bar.update)
                except SyncError as exc:
                    stored, failed = exc.stored, exc.errors
        except NotSyncable as exc:
            click.echo(f"hub sync: {exc}", err=True)
            sys.exit(2)
        finally:
            hub.close()
        for name, count in stored.items():
            click.echo(f"{name}: {count} record{'s' if count != 1 else ''} stored")
        for name, message in failed.items():
            click.echo(f"{name}: stopped: {message}", err=True)
        if failed:
            sys.exit(1)
