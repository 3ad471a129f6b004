"""Shopify: one webhook per request, signed with a base64 HMAC-SHA256 of the raw body.

Both delivery flavours are accepted: classic webhooks (``X-Shopify-*`` headers) and the
Events delivery (the same headers without the ``X-`` prefix). The idempotency key is the
per-delivery ``Webhook-Id``; without one it is ``<Event-Id>:<Topic>``, because an Event-Id
alone is shared by every topic one merchant action produces.

``hub sync shopify`` pulls customers and orders from the REST Admin API with the app's access
token. A pulled record has the REST shape a webhook body has, so it takes the webhook topic that
maps it alike: ``customers/update`` and ``orders/updated``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Mapping

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, Stream, WebhookRequest,
                           aware_time, constant_time_equal, json_object)
from hub.hookspecs import hookimpl
from hub.paginators import LinkHeader
from hub.sync import NotSyncable

if TYPE_CHECKING:  # pragma: no cover
    import requests

log = logging.getLogger(__name__)

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
#: the REST Admin API version pulls use (each is supported for a year after its release)
API_VERSION = "2025-07"
#: the most records a REST Admin API page holds
PAGE_SIZE = 250
#: the leaky bucket's fill, ``<calls in the bucket>/<bucket size>``
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
#: the share of the bucket a pull may fill before it waits for the bucket to leak
BUCKET_SHARE = 0.75
#: seconds a full bucket takes to leak: 40 calls at 2/s, 80 at 4/s (Advanced), 400 at 20/s (Plus)
BUCKET_LEAK_SECONDS = 20

class ShopifySettings(ConnectorSettingsSchema):
    """``connectors.shopify``: the signing secret, optionally the one shop to accept; shop and token to pull."""

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
        (``<id>:<updated_at>``, one per state of the resource). Each refund an order lists gets
        its own ``_derived``, as a refunds/create body does.
        """
        document = super().parse(body, topic)
        if isinstance(document, dict):
            refunds = document.get("refunds")
            for refund in refunds if isinstance(refunds, list) else ():
                if isinstance(refund, dict):
                    refund["_derived"] = derived(refund)
            document["_derived"] = derived(document)
        return document

    def streams(self, settings: Mapping) -> list[Stream]:
        """Customers and orders of any status, each asked for since its latest ``updated_at``.

        Pages follow the ``Link`` header's ``page_info`` cursor; ``updated_at_min`` keeps records
        updated at or after the stored one, which comes again and is stored once.
        https://shopify.dev/docs/api/admin-rest/usage/pagination
        """
        missing = [name for name in ("shop_domain", "access_token") if not settings.get(name)]
        if settings.get("api_base") and "shop_domain" in missing:
            missing.remove("shop_domain")
        if missing:
            raise NotSyncable(f"connector {self.name!r} needs {', '.join(missing)} in its configuration "
                              "to pull from the Shopify Admin API")
        since = {"cursor_field": "updated_at", "cursor_param": "updated_at_min"}
        return [
            Stream("customers", "customers.json", "id", LinkHeader(), "customers/update",
                   records_path="customers", params={"limit": PAGE_SIZE}, **since),
            # without status=any only open orders are listed, and cancelled ones are closed
            Stream("orders", "orders.json", "id", LinkHeader(), "orders/updated", records_path="orders",
                   params={"status": "any", "limit": PAGE_SIZE}, **since),
        ]

    def api_base(self, settings: Mapping) -> str:
        """``https://<shop_domain>/admin/api/<API_VERSION>`` unless ``api_base`` is set."""
        if settings.get("api_base") or not settings.get("shop_domain"):
            return super().api_base(settings)
        return f"https://{_host(settings['shop_domain'])}/admin/api/{API_VERSION}"

    def http_session(self, settings: Mapping) -> "requests.Session":
        """A session sending the app's token as ``X-Shopify-Access-Token``."""
        session = super().http_session(settings)
        session.headers["X-Shopify-Access-Token"] = settings["access_token"]
        return session

    def throttle(self, response: "requests.Response") -> float:
        """Seconds until the leaky bucket is back to :data:`BUCKET_SHARE` of its size.

        ``X-Shopify-Shop-Api-Call-Limit: 32/40`` says how full the app's bucket is; it leaks
        a twentieth of its size a second. https://shopify.dev/docs/api/admin-rest/usage/rate-limits
        """
        used, _, size = (response.headers.get(CALL_LIMIT_HEADER) or "").partition("/")
        try:
            used_calls, bucket = int(used), int(size)
        except ValueError:
            return 0.0
        if bucket <= 0:
            return 0.0
        excess = used_calls - bucket * BUCKET_SHARE
        return max(0.0, excess * BUCKET_LEAK_SECONDS / bucket)


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
