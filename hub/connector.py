"""What a connector is: the object a plugin registers for one platform.

A connector verifies and splits webhook requests, declares the API streams ``hub sync``
pulls, and parses records. The hub calls it through this interface only, so ``webhooks/``
and the rest of ``hub/`` never name a platform.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from marshmallow import Schema

from hub import json_codec
from hub.config import ConnectorSettingsSchema
from hub.paginators import PAGINATORS, Paginator

if TYPE_CHECKING:  # pragma: no cover
    import requests


class SignatureError(Exception):
    """The request is not provably from the platform (bad, missing or stale signature)."""


class PayloadError(Exception):
    """The request body cannot be understood."""


@dataclass(frozen=True)
class WebhookRequest:
    """An inbound HTTP request, reduced to what a connector may look at."""

    method: str
    headers: Mapping[str, str]  # case-insensitive lookups via :meth:`header`
    query: Mapping[str, str]
    body: bytes
    url_factory: Callable[[], str] = field(default=lambda: "", repr=False, compare=False)

    @property
    def url(self) -> str:
        """The full URL the platform called (built on demand: few schemes sign it)."""
        return self.url_factory()

    def header(self, name: str, default: str | None = None) -> str | None:
        """The value of header ``name`` (case-insensitive), or ``default``."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default


@dataclass(frozen=True)
class Delivery:
    """One record to keep in the inbox; ``key`` is unique per connector (the idempotency key)."""

    key: str
    body: bytes
    topic: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Reply:
    """A connector's own answer to a request that carries no record (a URL check, a ping)."""

    status: int
    body: str = ""


def iso_z(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Window:
    """Bounded time ranges, for an API that answers nothing wider (PayPal: 31 days).

    A run walks consecutive ranges of at most ``length`` up to now, each sent as
    ``start_param``/``end_param`` (formatted by ``format``): from where the previous run's
    ranges ended, less ``overlap`` (for records the platform lists late), or from
    ``backfill`` ago on a first run or with ``--full``. A range's end is stored with its last
    page, so a run cut short resumes inside the range it was in.
    """

    start_param: str
    end_param: str
    length: timedelta
    backfill: timedelta
    overlap: timedelta = timedelta(0)
    format: Callable[[datetime], str] = iso_z


@dataclass(frozen=True)
class Stream:
    """One collection of a platform's API that ``hub sync`` pulls into the inbox.

    ``path`` is relative to the connector's API base; ``records_path`` is where the list
    sits in the JSON answer (``""``: the body is the list); ``primary_key`` and
    ``cursor_field`` are dotted field paths in a record (the cursor is its update time,
    ISO 8601 or unix seconds). With ``cursor_param`` a run asks only for records updated
    since the stored high-water mark, sent as ``cursor_format`` (``iso`` or ``unix``).
    ``topic`` is given to the pulled records so that the connector's webhook mapping applies.
    With a ``window``, the stream is pulled range by range (see :class:`Window`).
    """

    name: str
    path: str
    primary_key: str
    paginator: Paginator
    topic: str
    records_path: str = ""
    cursor_field: str | None = None
    cursor_param: str | None = None
    cursor_format: str = "iso"
    params: Mapping[str, Any] = field(default_factory=dict)
    window: Window | None = None

    def __post_init__(self):
        if type(self.paginator) not in PAGINATORS:
            raise TypeError(f"stream {self.name!r}: the paginator must be one of "
                            f"{', '.join(p.__name__ for p in PAGINATORS)}")
        if self.cursor_format not in ("iso", "unix"):
            raise ValueError(f"stream {self.name!r}: cursor_format must be 'iso' or 'unix'")
        if self.cursor_param and not self.cursor_field:
            raise ValueError(f"stream {self.name!r}: cursor_param needs a cursor_field")


class Connector:
    """Base class of every connector; subclasses set ``name`` and override what they support."""

    name: ClassVar[str] = ""
    #: marshmallow schema of the connector's section in ``hub.yaml`` (subclass ``Settings``)
    settings_schema: ClassVar[type[Schema]] = ConnectorSettingsSchema
    #: HTTP methods the webhook endpoint accepts for this connector
    webhook_methods: ClassVar[Sequence[str]] = ("POST",)
    #: request headers kept with each inbox record (lower-case names)
    kept_headers: ClassVar[Sequence[str]] = ()

    #: how many values of this connector's identity types one person may hold, where the
    #: default (1 per platform id type) is wrong; ``identity.limits`` in hub.yaml still wins
    identity_limits: ClassVar[Mapping[str, int]] = {}
    #: folder holding ``<name>.yaml``, the connector's mapping (None: the hub's ``mappings/``)
    mapping_dir: ClassVar[str | None] = None

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The document a stored record's mapping reads (JSON by default)."""
        try:
            return json_codec.loads(body)
        except ValueError:
            raise PayloadError("stored body is not JSON") from None

    def preflight(self, request: WebhookRequest, settings: Mapping) -> Reply | None:
        """Answer a request that is not an event (e.g. a URL validation), or return None."""
        return None

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Raise :class:`SignatureError` unless the request provably comes from the platform."""
        raise SignatureError(f"connector {self.name!r} does not accept webhooks")

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """Cut a verified request into deliveries; raise :class:`PayloadError` if unparseable."""
        raise PayloadError(f"connector {self.name!r} does not accept webhooks")

    def streams(self, settings: Mapping) -> list[Stream]:
        """The API streams ``hub sync`` can pull (none by default)."""
        return []

    def api_base(self, settings: Mapping) -> str:
        """The URL that stream paths are relative to (the ``api_base`` setting by default)."""
        return settings.get("api_base") or ""

    def http_session(self, settings: Mapping) -> "requests.Session":
        """A session for API calls; connectors add their authentication headers."""
        import requests

        return requests.Session()

    def throttle(self, response: "requests.Response") -> float:
        """Seconds to wait before the next API call, given the last answer (0 by default)."""
        return 0.0


def aware_time(value: Any, naive_utc: bool = False) -> datetime | None:
    """An ISO 8601 time with an offset (``Z`` too), in UTC; None if absent, unreadable, or naive
    (unless ``naive_utc``: then a time without offset is taken as UTC)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc) if naive_utc else None
    return parsed.astimezone(timezone.utc)


def json_object(body: bytes) -> dict:
    """The JSON object a request body holds; :class:`PayloadError` if it is not one."""
    try:
        document = json_codec.loads(body)
    except ValueError:
        raise PayloadError("body is not JSON") from None
    if not isinstance(document, dict):
        raise PayloadError("body is not a JSON object")
    return document


def constant_time_equal(expected: str | bytes, given: str | bytes | None) -> bool:
    """Compare two secrets or signatures in constant time; ``None`` never matches."""
    if given is None:
        return False
    if isinstance(expected, str):
        expected = expected.encode()
    if isinstance(given, str):
        given = given.encode()
    return hmac.compare_digest(expected, given)
