"""Stripe: one event per request, signed in ``Stripe-Signature`` with an HMAC-SHA256.

The header is ``t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]``. Each ``v1`` is the hex
HMAC-SHA256 of ``"{t}.{raw body}"`` keyed with the endpoint's whole ``whsec_...`` secret
as UTF-8 (not base64-decoded). Any ``v1`` may match (several are sent while a secret is
being rolled); every other scheme is ignored. Unlike Stripe's SDK, which only rejects old
timestamps, a timestamp too far in the future is rejected too. The idempotency key is the
event ``id`` (``evt_...``).

``hub sync stripe`` pulls with a secret or restricted key, at the pinned :data:`API_VERSION`:
the customers, charges, invoices, subscriptions and refunds (topics ``api:<object>``), then
the events that tell what became of them, whose topics are their webhook types.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, Stream, WebhookRequest,
                           aware_time, json_object)
from hub.hookspecs import hookimpl
from hub.paginators import CursorAfter, field_at
from hub.sync import NotSyncable

if TYPE_CHECKING:  # pragma: no cover
    import requests

HEADER = "Stripe-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300
#: the unified address keys and the Stripe address fields they come from
ADDRESS_FIELDS = {"line1": "line1", "line2": "line2", "city": "city", "region": "state",
                  "postal_code": "postal_code", "country": "country"}

API_BASE = "https://api.stripe.com/v1"
#: the API version the mapping and its fixtures are written for, sent as ``Stripe-Version``
API_VERSION = "2024-06-20"
PAGE_SIZE = 100
PULLED_CHARGE, PULLED_REFUND = "api:charge", "api:refund"
#: the lists pulled: stream (and path) -> topic, list parameters
OBJECT_STREAMS = {
    "customers": ("api:customer", {}),
    "charges": (PULLED_CHARGE, {}),
    "invoices": ("api:invoice", {}),
    # without status=all the list leaves canceled subscriptions out
    "subscriptions": ("api:subscription", {"status": "all"}),
    # each refund with its charge, and that charge's newest refunds (see refunded_charge):
    # https://docs.stripe.com/api/expanding_objects
    "refunds": (PULLED_REFUND, {"expand[]": "data.charge.refunds"}),
}
PULLED_TOPICS = frozenset(topic for topic, _ in OBJECT_STREAMS.values())
#: events of what happens to an object after its creation, once a list's ``created`` cursor
#: has passed it: one stream per type, so that each keeps its webhook topic
EVENT_STREAMS = ("customer.updated", "charge.succeeded", "charge.failed", "invoice.paid",
                 "invoice.payment_failed", "customer.subscription.deleted")
#: refund statuses that take nothing off a charge
VOID_REFUNDS = ("failed", "canceled")


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
        and the mapping's root is ``data.object``), ``event_id``, ``address`` (a customer's
        address in the unified shape) and ``refund`` (what one ``charge.refunded`` returned: ``id``
        ``<charge>:<amount_refunded>`` and ``amount``, the minor units it added to ``amount_refunded``).
        A pulled object (topic ``api:<object>``) is shaped as its event instead: see :func:`pulled`.
        """
        event = super().parse(body, topic)
        if topic in PULLED_TOPICS and isinstance(event, dict):
            return pulled(event, topic)
        data = event.get("data") if isinstance(event, dict) else None
        obj = data.get("object") if isinstance(data, dict) else None
        if isinstance(obj, dict):
            obj["_derived"] = derived(event, obj, data.get("previous_attributes"))
        return event

    def streams(self, settings: Mapping) -> list[Stream]:
        """The object lists, then the events (kept 30 days), each from its newest ``created``.

        Lists are newest first, walked with ``starting_after`` while ``has_more``; a later run
        asks for ``created[gte]`` the newest one seen. https://docs.stripe.com/api/pagination
        """
        if not settings.get("api_key"):
            raise NotSyncable(f"connector {self.name!r} needs api_key (a secret or restricted key) "
                              "in its configuration to pull from the Stripe API")
        since = {"records_path": "data", "cursor_field": "created", "cursor_param": "created[gte]",
                 "cursor_format": "unix"}
        objects = [Stream(name, name, "id", CursorAfter(), topic, params={"limit": PAGE_SIZE, **extra}, **since)
                   for name, (topic, extra) in OBJECT_STREAMS.items()]
        # an event's data is rendered at the API version of its time, whatever Stripe-Version
        # says: https://docs.stripe.com/api/events/list
        events = [Stream(f"events.{kind}", "events", "id", CursorAfter(), kind,
                         params={"type": kind, "limit": PAGE_SIZE}, **since) for kind in EVENT_STREAMS]
        return objects + events

    def api_base(self, settings: Mapping) -> str:
        """``https://api.stripe.com/v1`` unless ``api_base`` is set."""
        return super().api_base(settings) or API_BASE

    def http_session(self, settings: Mapping) -> "requests.Session":
        """Bearer authentication with the API key, every call at :data:`API_VERSION`."""
        session = super().http_session(settings)
        session.headers.update({"Authorization": f"Bearer {settings['api_key']}", "Stripe-Version": API_VERSION})
        return session

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
    found = {"changed_at": event.get("created"), "event_id": event.get("id")}
    if obj.get("object") == "customer":
        found["address"] = unified_address(obj.get("address"))
    if event.get("type") == "charge.refunded" and isinstance(obj.get("amount_refunded"), int):
        before = previous.get("amount_refunded") if isinstance(previous, dict) else None
        found["refund"] = {"id": f"{obj.get('id')}:{obj['amount_refunded']}",
                           "amount": obj["amount_refunded"] - (before if isinstance(before, int) else 0)}
    return {name: value for name, value in found.items() if value is not None}


def pulled(record: dict, topic: str) -> dict:
    """A pulled object shaped as its event, ``{"data": {"object": ...}}``, for the mapping.

    It has no event time (no ``changed_at``: its traits count as seen when it was pulled). A
    charge gets ``outcome`` (see :func:`charge_outcome`); a refund becomes its charge, as the
    ``charge.refunded`` event of that refund showed it (see :func:`refunded_charge`).
    """
    if topic == PULLED_REFUND:
        return {"data": {"object": refunded_charge(record)}}
    found = derived({}, record, None)
    if topic == PULLED_CHARGE:
        found["outcome"] = charge_outcome(record)
    record["_derived"] = {name: value for name, value in found.items() if value is not None}
    return {"data": {"object": record}}


def charge_outcome(charge: dict) -> str | None:
    """The webhook a pulled charge's state stands for: ``paid`` (``charge.succeeded``),
    ``paid_by_invoice`` (the same, its money counted by the invoice), ``failed``
    (``charge.failed``), or None (pending). Its refunds come from the refunds list."""
    status = charge.get("status")
    if status == "succeeded":
        return "paid_by_invoice" if charge.get("invoice") else "paid"
    return "failed" if status == "failed" else None


def refunded_charge(refund: dict) -> dict:
    """A pulled refund's charge, as the ``charge.refunded`` event of this refund showed it.

    That is the charge with ``amount_refunded`` as this refund left it, this refund as its
    ``refunds.data.0`` and the ``_derived.refund`` the event gives (so the activity id is the
    webhook's). A refund without its expanded charge gives an empty document.
    """
    charge = refund.get("charge")
    if not isinstance(charge, dict):
        return {"_derived": {}}
    refund = {**refund, "charge": charge.get("id")}
    found: dict[str, Any] = {"changed_at": refund.get("created")}
    total = amount_refunded_after(refund, charge)
    if total is not None:
        found["refund"] = {"id": f"{charge.get('id')}:{total}", "amount": refund["amount"]}
    return {**charge, "amount_refunded": total, "refunds": {"object": "list", "data": [refund]},
            "_derived": {name: value for name, value in found.items() if value is not None}}


def amount_refunded_after(refund: dict, charge: dict) -> int | None:
    """The charge's ``amount_refunded`` just after ``refund``: today's total less the refunds since.

    ``charge.refunds`` lists the newest refunds first. None for a failed or canceled refund
    (it took nothing off) or one older than the listed ones (its total cannot be known).
    """
    listed = [r for r in field_at(charge, "refunds.data") or () if isinstance(r, dict)]
    ids = [r.get("id") for r in listed]
    total = charge.get("amount_refunded")
    if refund.get("status") in VOID_REFUNDS or refund.get("id") not in ids or not isinstance(total, int) \
            or not isinstance(refund.get("amount"), int):
        return None
    since = listed[:ids.index(refund["id"])]
    return total - sum(r.get("amount") or 0 for r in since if r.get("status") not in VOID_REFUNDS)


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
    return aware_time(value)


@hookimpl
def register_connectors():
    return [Stripe()]
