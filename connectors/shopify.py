"""Shopify: one webhook per request, signed with a base64 HMAC-SHA256 of the raw body.

Both delivery flavours are accepted: classic webhooks (``X-Shopify-*`` headers) and the
Events delivery (the same headers without the ``X-`` prefix). The idempotency key is the
per-delivery ``Webhook-Id``; without one it is ``<Event-Id>:<Topic>``, because an Event-Id
alone is shared by every topic one merchant action produces.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, WebhookRequest, aware_time,
                           constant_time_equal, json_object)
from hub.hookspecs import hookimpl

#: header suffixes Shopify sends as ``X-Shopify-<name>`` (webhooks) or ``Shopify-<name>`` (Events)
KEPT = ("topic", "shop-domain", "api-version", "webhook-id", "event-id", "triggered-at",
        "name", "sub-topic", "handle", "action", "resource-id")
#: Shopify's email marketing states in the unified vocabulary; ``not_subscribed`` (the default
#: of a customer never asked) and ``redacted`` (erased data) say nothing about consent
EMAIL_CONSENT = {"subscribed": "subscribed", "pending": "pending", "unsubscribed": "unsubscribed",
                 "invalid": "cleaned"}
#: the unified address fields and the Shopify fields they come from, first non-blank wins
ADDRESS_FIELDS = {"line1": ("address1",), "line2": ("address2",), "city": ("city",),
                  "region": ("province_code", "province"), "postal_code": ("zip",),
                  "country": ("country_code", "country")}


class ShopifySettings(ConnectorSettingsSchema):
    """``connectors.shopify``: the signing secret, and optionally the one shop to accept."""

    webhook_secret = fields.String(required=True, validate=validate.Length(min=1))
    shop_domain = fields.String(load_default=None, allow_none=True)
    access_token = fields.String(load_default=None, allow_none=True)


class Shopify(Connector):
    """``POST /webhooks/shopify``: one REST resource per request, one inbox record."""

    name = "shopify"
    settings_schema = ShopifySettings
    kept_headers = tuple(f"x-shopify-{h}" for h in KEPT) + tuple(f"shopify-{h}" for h in KEPT)

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Check ``X-Shopify-Hmac-Sha256`` against the body, then the shop if one is configured."""
        given = _header(request, "hmac-sha256")
        if not given:
            raise SignatureError("missing X-Shopify-Hmac-Sha256 header")
        if not request.body:
            raise SignatureError("empty body")
        if not constant_time_equal(signature(settings["webhook_secret"], request.body), given.strip()):
            raise SignatureError("X-Shopify-Hmac-Sha256 does not match the body")
        expected = settings.get("shop_domain")
        if expected and _host(_header(request, "shop-domain")) != _host(expected):
            raise SignatureError("X-Shopify-Shop-Domain is not the configured shop_domain")

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """One delivery keyed by Webhook-Id (else ``<Event-Id>:<Topic>``), body kept verbatim."""
        payload = json_object(request.body)
        topic = _header(request, "topic")
        if not topic:
            raise PayloadError("missing X-Shopify-Topic header")
        key = _header(request, "webhook-id")
        if not key:
            event_id = _header(request, "event-id")
            if not event_id:
                raise PayloadError("missing X-Shopify-Webhook-Id and X-Shopify-Event-Id headers")
            key = f"{event_id}:{topic}"
        occurred_at = (aware_time(_header(request, "triggered-at")) or aware_time(payload.get("updated_at"))
                       or aware_time(payload.get("created_at")))
        return [Delivery(key=key[:255], body=request.body, topic=topic, occurred_at=occurred_at)]

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored resource plus ``_derived``, the values ``mappings/shopify.yaml`` cannot compute.

        ``address`` (the customer's default address in the unified shape), ``email_consent``
        (the marketing state in the unified vocabulary), ``line_items_count`` (how many an order has),
        ``refund_amount`` (a refund's successful refund transactions, summed) and ``version``
        (``<id>:<updated_at>``, one per state of the resource).
        """
        document = super().parse(body, topic)
        if isinstance(document, dict):
            document["_derived"] = derived(document)
        return document


def derived(resource: dict) -> dict:
    """What the mapping reads under ``_derived`` for one customer, order or refund."""
    customer = resource.get("customer") if isinstance(resource.get("customer"), dict) else resource
    consent = customer.get("email_marketing_consent")
    state = str(consent.get("state") or "").lower() if isinstance(consent, dict) else ""
    lines = resource.get("line_items")
    found = {
        "address": unified_address(customer.get("default_address")),
        "email_consent": EMAIL_CONSENT.get(state),
        "line_items_count": len(lines) if isinstance(lines, list) else None,
        "refund_amount": refund_amount(resource.get("transactions")),
        "version": (f"{resource['id']}:{resource['updated_at']}"
                    if resource.get("id") and resource.get("updated_at") else None),
    }
    return {name: value for name, value in found.items() if value is not None}


def unified_address(address: Any) -> dict | None:
    """A Shopify address as ``{line1, line2, city, region, postal_code, country}`` (codes preferred)."""
    if not isinstance(address, dict):
        return None
    unified = {name: _first_text(address, keys) for name, keys in ADDRESS_FIELDS.items()}
    return unified if any(unified.values()) else None


def _first_text(data: dict, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` holding non-blank text, stripped."""
    for key in keys:
        text = str(data.get(key) or "").strip()
        if text:
            return text
    return None


def refund_amount(transactions: Any) -> str | None:
    """The money a refund returned: its successful ``refund`` transactions summed, as a decimal string."""
    if not isinstance(transactions, list):
        return None
    amounts = []
    for transaction in transactions:
        if (isinstance(transaction, dict) and transaction.get("kind") == "refund"
                and transaction.get("status") == "success"):
            try:
                amounts.append(Decimal(str(transaction.get("amount"))))
            except InvalidOperation:
                raise PayloadError(f"refund amount {transaction.get('amount')!r} is not a decimal") from None
    return str(sum(amounts, Decimal(0))) if amounts else None


def signature(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value for ``body``: base64 of its HMAC-SHA256."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _header(request: WebhookRequest, name: str) -> str | None:
    """``X-Shopify-<name>``, else the Events delivery's ``Shopify-<name>``."""
    return request.header(f"x-shopify-{name}") or request.header(f"shopify-{name}")


def _host(value: str | None) -> str:
    """A shop domain compared without scheme, trailing slash or case."""
    host = (value or "").strip().lower()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    return host.rstrip("/")



@hookimpl
def register_connectors():
    return [Shopify()]
