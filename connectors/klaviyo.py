"""Klaviyo system webhooks: hex HMAC-SHA256 over the raw body followed by the timestamp header.

One request carries ``{"meta": {...}, "data": [events...]}``; each event becomes one inbox
record keyed by its ``external_id`` (the Klaviyo event id). ``meta.klaviyo_webhook_id`` must
match the ``Klaviyo-Webhook-Id`` header. Flow webhooks (the unsigned "Webhook" action inside
a flow) are a different thing and are not accepted here.
"""
from __future__ import annotations

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

SIGNATURE = "Klaviyo-Signature"
TIMESTAMP = "Klaviyo-Timestamp"
WEBHOOK_ID = "Klaviyo-Webhook-Id"


class KlaviyoSettings(ConnectorSettingsSchema):
    webhook_secret = fields.String(required=True, validate=validate.Length(min=1))
    api_key = fields.String(load_default=None, allow_none=True)


class Klaviyo(Connector):
    """``POST /webhooks/klaviyo``: a signed batch, one inbox record per event."""

    name = "klaviyo"
    settings_schema = KlaviyoSettings
    kept_headers = ("klaviyo-webhook-id", "klaviyo-timestamp")

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Check the signature, then that the body names the webhook the header names."""
        given = request.header(SIGNATURE)
        stamp = request.header(TIMESTAMP)
        webhook_id = request.header(WEBHOOK_ID)
        if not given or not stamp or not webhook_id:
            raise SignatureError(f"missing {SIGNATURE}, {TIMESTAMP} or {WEBHOOK_ID} header")
        if not constant_time_equal(sign(settings["webhook_secret"], request.body, stamp),
                                   given.strip().lower()):
            raise SignatureError(f"{SIGNATURE} does not match")
        try:
            payload = json.loads(request.body)
        except ValueError:
            return
        meta = payload.get("meta") if isinstance(payload, dict) else None
        named = meta.get("klaviyo_webhook_id") if isinstance(meta, dict) else None
        if not isinstance(named, str) or not constant_time_equal(named, webhook_id):
            raise SignatureError(f"meta.klaviyo_webhook_id does not match the {WEBHOOK_ID} header")

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """One delivery per entry of ``data``, keyed by ``external_id``, topic = its ``topic``."""
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise PayloadError("body is not JSON") from None
        events = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(events, list) or not events:
            raise PayloadError('expected {"meta": {...}, "data": [...]} with at least one event')
        return [_delivery(index, event) for index, event in enumerate(events)]


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """The ``Klaviyo-Signature`` value: hex HMAC-SHA256 of the body then the timestamp."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256)
    digest.update(timestamp.encode())
    return digest.hexdigest()


def _delivery(index: int, event) -> Delivery:
    if not isinstance(event, dict):
        raise PayloadError(f"data[{index}] is not an object")
    key, topic = event.get("external_id"), event.get("topic")
    if not isinstance(key, str) or not 0 < len(key) <= 255:
        raise PayloadError(f"data[{index}].external_id must be a string of 1 to 255 characters")
    if not isinstance(topic, str) or not topic:
        raise PayloadError(f"data[{index}].topic must be a non-empty string")
    body = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    return Delivery(key=key, body=body, topic=topic, occurred_at=_occurred_at(event))


def _occurred_at(event: dict) -> datetime | None:
    """``payload.data.attributes.datetime`` (ISO 8601), else its unix ``timestamp``."""
    data = event.get("payload", {}).get("data") if isinstance(event.get("payload"), dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    if not isinstance(attributes, dict):
        return None
    when = attributes.get("datetime")
    if isinstance(when, str):
        try:
            parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(timezone.utc)
    stamp = attributes.get("timestamp")
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        try:
            return datetime.fromtimestamp(stamp, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    return None


@hookimpl
def register_connectors():
    return [Klaviyo()]
