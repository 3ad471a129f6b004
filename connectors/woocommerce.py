"""WooCommerce: one REST resource per request, signed with a base64 HMAC-SHA256 of the raw body.

WooCommerce sends no event id (``X-WC-Webhook-Delivery-ID`` is a hash of the webhook id and
the current second), so the key is derived from the resource state:
``<resource>:<id>:<date_modified_gmt>:<event>``. A redelivery of the same state gives the
same key; a later modification gives a new one.

``hub sync woocommerce`` pulls customers and orders from the REST API v3 with a consumer key
and secret. A pulled record has the shape a webhook body has, so it takes the webhook topic
that maps it alike: ``customer.updated`` and ``order.updated``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Mapping

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, Reply, SignatureError, Stream, WebhookRequest,
                           aware_time, constant_time_equal)
from hub.hookspecs import hookimpl
from hub.paginators import PageNumber
from hub.sync import NotSyncable

if TYPE_CHECKING:  # pragma: no cover
    import requests

log = logging.getLogger(__name__)

#: the body of the unsigned ping WooCommerce sends when a webhook is saved or activated
PING = re.compile(rb"webhook_id=[0-9]+")
#: what ``wp_specialchars_decode($secret, ENT_QUOTES)`` undoes before WooCommerce signs
_ENTITY_PADDING = ((re.compile(r"&#0*39;"), "&#039;"), (re.compile(r"&#x0*27;", re.I), "&#x27;"),
                   (re.compile(r"&#0*34;"), "&#034;"), (re.compile(r"&#x0*22;", re.I), "&#x22;"),
                   (re.compile(r"&#0*60;"), "&#060;"), (re.compile(r"&#0*62;"), "&#062;"),
                   (re.compile(r"&#0*38;"), "&#038;"), (re.compile(r"&#x0*26;", re.I), "&#x26;"))
_ENTITIES = {"&#039;": "'", "&#x27;": "'", "&quot;": '"', "&#034;": '"', "&#x22;": '"',
             "&lt;": "<", "&#060;": "<", "&gt;": ">", "&#062;": ">",
             "&amp;": "&", "&#038;": "&", "&#x26;": "&"}
_ENTITY = re.compile("|".join(re.escape(entity) for entity in _ENTITIES))
#: the unified address fields and the WooCommerce address fields they come from
ADDRESS_FIELDS = {"line1": "address_1", "line2": "address_2", "city": "city", "region": "state",
                  "postal_code": "postcode", "country": "country"}
#: the most records a REST API page holds
PAGE_SIZE = 100

class WooCommerceSettings(ConnectorSettingsSchema):
    """``connectors.woocommerce``: the webhook secret; the store and a REST API key to pull."""

    webhook_secret = fields.String(required=True, validate=validate.Length(min=1))
    store_url = fields.Url(load_default=None, allow_none=True, require_tld=False)
    consumer_key = fields.String(load_default=None, allow_none=True)
    consumer_secret = fields.String(load_default=None, allow_none=True)


class WooCommerce(Connector):
    """``POST /webhooks/woocommerce``: one resource per request, one inbox record."""

    name = "woocommerce"
    settings_schema = WooCommerceSettings
    kept_headers = ("x-wc-webhook-source", "x-wc-webhook-topic", "x-wc-webhook-resource",
                    "x-wc-webhook-event", "x-wc-webhook-id", "x-wc-webhook-delivery-id")

    def preflight(self, request: WebhookRequest, settings: Mapping) -> Reply | None:
        """Answer the setup ping (``webhook_id=N``) with exactly 200; it carries no record."""
        if request.method == "POST" and PING.fullmatch(request.body):
            return Reply(200, "")
        return None

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Check ``X-WC-Webhook-Signature`` against the raw body."""
        given = request.header("X-WC-Webhook-Signature")
        if not given:
            raise SignatureError("missing X-WC-Webhook-Signature header")
        if not constant_time_equal(signature(settings["webhook_secret"], request.body), given.strip()):
            raise SignatureError("X-WC-Webhook-Signature does not match the body")

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """One delivery keyed by resource, id, modification time and event; body kept verbatim."""
        try:
            payload = json.loads(request.body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not _is_id(payload.get("id")):
            raise PayloadError("body is not a JSON object with an id")
        topic = request.header("X-WC-Webhook-Topic")
        if not topic or "." not in topic:
            raise PayloadError("missing X-WC-Webhook-Topic header")
        resource, _, event = topic.partition(".")
        resource = request.header("X-WC-Webhook-Resource") or resource
        event = request.header("X-WC-Webhook-Event") or event
        modified = payload.get("date_modified_gmt") or payload.get("date_modified") or ""
        key = f"{resource}:{payload['id']}:{modified}:{event}"
        occurred_at = aware_time(payload.get("date_modified_gmt"), naive_utc=True)  # *_gmt: UTC, no offset
        return [Delivery(key=key[:255], body=request.body, topic=topic, occurred_at=occurred_at)]

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored resource plus ``_derived``, the values ``mappings/woocommerce.yaml`` cannot compute.

        ``address`` (the billing address in the unified shape), ``line_items_count`` (how many an
        order has), ``refunds`` (an order's refunds, newest first: ``id``, ``amount`` as a positive
        decimal string, ``reason``) and ``version`` (``<id>:<date_modified_gmt>``, one per state).
        """
        document = super().parse(body, topic)
        if isinstance(document, dict):
            document["_derived"] = derived(document)
        return document

    def streams(self, settings: Mapping) -> list[Stream]:
        """Customers (all of them, every run) and orders modified since the latest ``date_modified_gmt``.

        Both walk ``page`` by ``page`` in id order, so a record modified during a run keeps its
        place. The customers endpoint has no modification filter (only orderby id, include, name
        or registered_date); a customer unchanged since the last run keeps its inbox key and is
        stored once. https://woocommerce.github.io/woocommerce-rest-api-docs/#list-all-customers
        """
        missing = [name for name in ("store_url", "consumer_key", "consumer_secret") if not settings.get(name)]
        if settings.get("api_base") and "store_url" in missing:
            missing.remove("store_url")
        if missing:
            raise NotSyncable(f"connector {self.name!r} needs {', '.join(missing)} in its configuration "
                              "to pull from the WooCommerce REST API")
        if not settings.get("api_base") and not settings["store_url"].lower().startswith("https://"):
            raise NotSyncable(f"connector {self.name!r} pulls over HTTPS only: WooCommerce takes the consumer key "
                              "and secret by HTTP Basic over HTTPS alone, so store_url must start with https://")
        in_id_order = {"per_page": PAGE_SIZE, "orderby": "id", "order": "asc"}
        return [
            Stream("customers", "customers", "id", PageNumber(), "customer.updated",
                   cursor_field="date_modified_gmt", params=in_id_order),
            # the *_gmt times have no offset: dates_are_gmt=true has modified_after read them as UTC
            Stream("orders", "orders", "id", PageNumber(), "order.updated", cursor_field="date_modified_gmt",
                   cursor_param="modified_after", params={**in_id_order, "dates_are_gmt": "true"}),
        ]

    def api_base(self, settings: Mapping) -> str:
        """``<store_url>/wp-json/wc/v3`` unless ``api_base`` is set."""
        if settings.get("api_base") or not settings.get("store_url"):
            return super().api_base(settings)
        return settings["store_url"].rstrip("/") + "/wp-json/wc/v3"

    def http_session(self, settings: Mapping) -> "requests.Session":
        """HTTP Basic with the consumer key and secret (WooCommerce > Settings > Advanced > REST API)."""
        session = super().http_session(settings)
        session.auth = (settings["consumer_key"], settings["consumer_secret"])
        return session


def derived(resource: dict) -> dict:
    """What the mapping reads under ``_derived`` for one customer or order."""
    lines = resource.get("line_items")
    found = {
        "address": unified_address(resource.get("billing")),
        "line_items_count": len(lines) if isinstance(lines, list) else None,
        "refunds": refunds_newest_first(resource.get("refunds")),
        "version": (f"{resource['id']}:{resource['date_modified_gmt']}"
                    if resource.get("id") and resource.get("date_modified_gmt") else None),
    }
    return {name: value for name, value in found.items() if value is not None}


def unified_address(address: Any) -> dict | None:
    """A WooCommerce address as ``{line1, line2, city, region, postal_code, country}``; None if blank."""
    if not isinstance(address, dict):
        return None
    unified = {name: str(address.get(key) or "").strip() or None for name, key in ADDRESS_FIELDS.items()}
    return unified if any(unified.values()) else None


def refunds_newest_first(refunds: Any) -> list[dict] | None:
    """An order's refunds, the newest (highest id) first, their amounts positive: WooCommerce lists them negated."""
    if not isinstance(refunds, list):
        return None
    found = sorted((refund for refund in refunds if isinstance(refund, dict) and _is_id(refund.get("id"))),
                   key=lambda refund: int(refund["id"]), reverse=True)
    return [_refund(refund) for refund in found] or None


def _refund(refund: dict) -> dict:
    """One refund as ``{id, amount, reason}``: the id as text, the amount a positive decimal string."""
    try:
        amount = Decimal(0) - Decimal(str(refund.get("total")).strip())
    except InvalidOperation:
        raise PayloadError(f"refund total {refund.get('total')!r} is not a decimal") from None
    reason = str(refund.get("reason") or "").strip()
    return {"id": str(refund["id"]), "amount": str(amount), "reason": reason or None}


def signature(secret: str, body: bytes) -> str:
    """The ``X-WC-Webhook-Signature`` value for ``body``, keyed as WooCommerce keys it."""
    key = _decode_entities(secret).encode()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def _decode_entities(secret: str) -> str:
    """WordPress's ``wp_specialchars_decode(..., ENT_QUOTES)``: only ``& < > " '`` entities."""
    if "&" not in secret:
        return secret
    for pattern, canonical in _ENTITY_PADDING:
        secret = pattern.sub(canonical, secret)
    return _ENTITY.sub(lambda match: _ENTITIES[match.group(0)], secret)


def _is_id(value) -> bool:
    """A resource id: a positive integer or a non-empty string."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and value > 0) or (isinstance(value, str) and bool(value.strip()))


@hookimpl
def register_connectors():
    return [WooCommerce()]
