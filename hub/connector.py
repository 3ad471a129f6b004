"""What a connector is: the object a plugin registers for one platform.

A connector verifies and splits webhook requests (and, in later phases, pulls streams and
parses records). The hub calls it through this interface only, so ``webhooks/`` and the
rest of ``hub/`` never name a platform.
"""
from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar, Mapping, Sequence

from marshmallow import Schema

from hub.config import ConnectorSettingsSchema


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


class Connector:
    """Base class of every connector; subclasses set ``name`` and override what they support."""

    name: ClassVar[str] = ""
    #: marshmallow schema of the connector's section in ``hub.yaml`` (subclass ``Settings``)
    settings_schema: ClassVar[type[Schema]] = ConnectorSettingsSchema
    #: HTTP methods the webhook endpoint accepts for this connector
    webhook_methods: ClassVar[Sequence[str]] = ("POST",)
    #: request headers kept with each inbox record (lower-case names)
    kept_headers: ClassVar[Sequence[str]] = ()

    #: folder holding ``<name>.yaml``, the connector's mapping (None: the hub's ``mappings/``)
    mapping_dir: ClassVar[str | None] = None

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The document a stored record's mapping reads (JSON by default)."""
        try:
            return json.loads(body)
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


def constant_time_equal(expected: str | bytes, given: str | bytes | None) -> bool:
    """Compare two secrets or signatures in constant time; ``None`` never matches."""
    if given is None:
        return False
    if isinstance(expected, str):
        expected = expected.encode()
    if isinstance(given, str):
        given = given.encode()
    return hmac.compare_digest(expected, given)
