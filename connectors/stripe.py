"""Stripe: one event per request, signed in ``Stripe-Signature`` with an HMAC-SHA256.

The header is ``t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]``. Each ``v1`` is the hex
HMAC-SHA256 of ``"{t}.{raw body}"`` keyed with the endpoint's whole ``whsec_...`` secret
as UTF-8 (not base64-decoded). Any ``v1`` may match (several are sent while a secret is
being rolled); every other scheme is ignored. Unlike Stripe's SDK, which only rejects old
timestamps, a timestamp too far in the future is rejected too. The idempotency key is the
event ``id`` (``evt_...``).
"""
from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import Connector, Delivery, PayloadError, SignatureError, WebhookRequest, json_object
from hub.hookspecs import hookimpl

HEADER = "Stripe-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300
#: the unified address keys and the Stripe address fields they come from
ADDRESS_FIELDS = {"line1": "line1", "line2": "line2", "city": "city", "region": "state",
                  "postal_code": "postal_code", "country": "country"}


class StripeSettings(ConnectorSettingsSchema):
    """``connectors.stripe``: the endpoint's signing secret and the replay window."""

    webhook_secret = fields.String(required=True, validate=validate.Regexp(
        r"^whsec_\S+$", error="must be the endpoint's whole signing secret, starting with whsec_"))
    api_key = fields.String(load_default=None, allow_none=True)
    tolerance_seconds = fields.Integer(load_default=DEFAULT_TOLERANCE, validate=validate.Range(min=1))


class Stripe(Connector):
    """``POST /webhooks/stripe``: one Stripe event per request, one inbox record."""

    name = "stripe"
    settings_schema = StripeSettings
    kept_headers = ("user-agent",)

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored event, its ``data.object`` given ``_derived``: what the mapping cannot compute.

        ``changed_at`` (the event's ``created``: Stripe objects have no update time of their own,
        and the mapping's root is ``data.object``), ``address`` (a customer's address in the
        unified shape) and ``refund`` (what one ``charge.refunded`` returned: ``id``
        ``<charge>:<amount_refunded>`` and ``amount``, the minor units it added to ``amount_refunded``).
        """
        event = super().parse(body, topic)
        data = event.get("data") if isinstance(event, dict) else None
        obj = data.get("object") if isinstance(data, dict) else None
        if isinstance(obj, dict):
            obj["_derived"] = derived(event, obj, data.get("previous_attributes"))
        return event

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Check a ``v1`` signature of ``"{t}.{body}"`` and that ``t`` is within the tolerance."""
        header = request.header(HEADER)
        if not header:
            raise SignatureError(f"missing {HEADER} header")
        timestamp, candidates = parse_header(header)
        expected = signature(settings["webhook_secret"], timestamp, request.body)
        if not any(hmac.compare_digest(expected.encode(), given.encode()) for given in candidates):
            raise SignatureError(f"no {SCHEME} signature in {HEADER} matches the body")
        tolerance = settings.get("tolerance_seconds") or DEFAULT_TOLERANCE
        if abs(time.time() - timestamp) > tolerance:
            raise SignatureError(f"{HEADER} timestamp outside the tolerance")

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """One delivery keyed by the event ``id``; topic ``type``; time ``created``."""
        event = json_object(request.body)
        key, topic = event.get("id"), event.get("type")
        if not isinstance(key, str) or not key:
            raise PayloadError("event has no id")
        if not isinstance(topic, str) or not topic:
            raise PayloadError("event has no type")
        return [Delivery(key=key[:255], body=request.body, topic=topic[:255],
                         occurred_at=_created(event.get("created")))]


def derived(event: dict, obj: dict, previous: Any) -> dict:
    """What the mapping reads under ``data.object._derived`` for one event."""
    found = {"changed_at": event.get("created")}
    if obj.get("object") == "customer":
        found["address"] = unified_address(obj.get("address"))
    if event.get("type") == "charge.refunded" and isinstance(obj.get("amount_refunded"), int):
        before = previous.get("amount_refunded") if isinstance(previous, dict) else None
        found["refund"] = {"id": f"{obj.get('id')}:{obj['amount_refunded']}",
                           "amount": obj["amount_refunded"] - (before if isinstance(before, int) else 0)}
    return {name: value for name, value in found.items() if value is not None}


def unified_address(address: Any) -> dict | None:
    """A Stripe address as ``{line1, line2, city, region, postal_code, country}``; None if empty."""
    if not isinstance(address, dict):
        return None
    unified = {name: str(address.get(key) or "").strip() or None for name, key in ADDRESS_FIELDS.items()}
    return unified if any(unified.values()) else None


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a ``Stripe-Signature`` value."""
    timestamps: list[str] = []
    candidates: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not name or not value:
            raise SignatureError(f"malformed {HEADER} header")
        if name == "t":
            timestamps.append(value)
        elif name == SCHEME:
            candidates.append(value)
    if len(timestamps) != 1 or not _unix_seconds(timestamps[0]):
        raise SignatureError(f"malformed {HEADER} header")
    if not candidates:
        raise SignatureError(f"no {SCHEME} signature in {HEADER} header")
    return int(timestamps[0]), candidates


def _unix_seconds(value: str) -> bool:
    """True for a plain ASCII decimal of at most 12 digits."""
    return 0 < len(value) <= 12 and value.isascii() and value.isdigit()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` value for ``body`` sent at ``timestamp``: hex HMAC-SHA256 of ``"{t}.{body}"``."""
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _created(value) -> datetime | None:
    """Unix seconds (snapshot events) or an ISO 8601 string (thin events), in UTC."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(timezone.utc) if parsed.tzinfo else None
    return None


@hookimpl
def register_connectors():
    return [Stripe()]
