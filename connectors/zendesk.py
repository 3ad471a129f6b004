"""Zendesk webhooks: base64 HMAC-SHA256 over the signature timestamp header + raw body.

The signing secret is used verbatim as the HMAC key (it looks like base64 but is not
decoded). A webhook either subscribes to Zendesk events (fixed JSON schema with ``type``
``zen:event-type:...`` and an event ``id``) or is connected to a trigger or automation
(a JSON body the admin writes from placeholders). Each request is one inbox record.
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

SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION_ID = "X-Zendesk-Webhook-Invocation-Id"
EVENT_TYPE_PREFIX = "zen:event-type:"


class ZendeskSettings(ConnectorSettingsSchema):
    webhook_secret = fields.String(required=True, validate=validate.Length(min=1))
    subdomain = fields.String(load_default=None, allow_none=True)
    email = fields.String(load_default=None, allow_none=True)
    api_token = fields.String(load_default=None, allow_none=True)


class Zendesk(Connector):
    """``POST /webhooks/zendesk``: one record per event-subscription or trigger request."""

    name = "zendesk"
    settings_schema = ZendeskSettings
    kept_headers = ("x-zendesk-account-id", "x-zendesk-webhook-id", "x-zendesk-webhook-invocation-id")

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Check ``X-Zendesk-Webhook-Signature`` against the timestamp header and the body."""
        given = request.header(SIGNATURE)
        stamp = request.header(TIMESTAMP)
        if not given or not stamp:
            raise SignatureError(f"missing {SIGNATURE} or {TIMESTAMP} header")
        if not constant_time_equal(sign(settings["webhook_secret"], stamp, request.body), given.strip()):
            raise SignatureError(f"{SIGNATURE} does not match")

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """Event mode: key = body ``id``, topic = ``type``; trigger mode: key = invocation id."""
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise PayloadError("body is not JSON (set the webhook's request format to JSON)") from None
        if not isinstance(payload, dict):
            raise PayloadError("body must be a JSON object")
        invocation = request.header(INVOCATION_ID) or None
        if is_event(payload):
            key = _text(payload.get("id")) or invocation
            topic, occurred_at = payload["type"], _timestamp(payload.get("time"))
        else:
            key = invocation
            topic = payload.get("topic") if isinstance(payload.get("topic"), str) else None
            occurred_at = _timestamp(payload.get("updated_at"))
        if not key:
            raise PayloadError(f"no event id in the body and no {INVOCATION_ID} header")
        if len(key) > 255:
            raise PayloadError("the event id is longer than 255 characters")
        return [Delivery(key=key, body=request.body, topic=topic or None, occurred_at=occurred_at)]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Zendesk-Webhook-Signature`` value: base64 HMAC-SHA256 of timestamp + body."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def is_event(payload: dict) -> bool:
    """True for an event-subscription body (``type`` is ``zen:event-type:...``)."""
    kind = payload.get("type")
    return isinstance(kind, str) and kind.startswith(EVENT_TYPE_PREFIX)


def _text(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value) or None


def _timestamp(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc) if parsed.tzinfo else None


@hookimpl
def register_connectors():
    return [Zendesk()]
