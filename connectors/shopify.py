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
import json
from datetime import datetime, timezone
from typing import Mapping

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, WebhookRequest,
                           constant_time_equal)
from hub.hookspecs import hookimpl

#: header suffixes Shopify sends as ``X-Shopify-<name>`` (webhooks) or ``Shopify-<name>`` (Events)
KEPT = ("topic", "shop-domain", "api-version", "webhook-id", "event-id", "triggered-at",
        "name", "sub-topic", "handle", "action", "resource-id")


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
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise PayloadError("body is not JSON") from None
        if not isinstance(payload, dict):
            raise PayloadError("body is not a JSON object")
        topic = _header(request, "topic")
        if not topic:
            raise PayloadError("missing X-Shopify-Topic header")
        key = _header(request, "webhook-id")
        if not key:
            event_id = _header(request, "event-id")
            if not event_id:
                raise PayloadError("missing X-Shopify-Webhook-Id and X-Shopify-Event-Id headers")
            key = f"{event_id}:{topic}"
        occurred_at = (_timestamp(_header(request, "triggered-at")) or _timestamp(payload.get("updated_at"))
                       or _timestamp(payload.get("created_at")))
        return [Delivery(key=key[:255], body=request.body, topic=topic, occurred_at=occurred_at)]


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


def _timestamp(value) -> datetime | None:
    """An ISO 8601 time with an offset, in UTC; None if absent, naive or unparseable."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else None


@hookimpl
def register_connectors():
    return [Shopify()]
