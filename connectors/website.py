"""Website tracking: batches of browser or server events signed with Standard Webhooks."""
from __future__ import annotations

import json
from typing import Mapping

from marshmallow import ValidationError, fields, validates

from hub import signing
from hub.config import ConnectorSettingsSchema
from hub.connector import Connector, Delivery, PayloadError, SignatureError, WebhookRequest, aware_time
from hub.hookspecs import hookimpl

EVENT_TYPES = ("page.viewed", "form.submitted", "identify")


class WebsiteSettings(ConnectorSettingsSchema):
    webhook_secret = fields.String(required=True)
    tolerance_seconds = fields.Integer(load_default=signing.DEFAULT_TOLERANCE)

    @validates("webhook_secret")
    def _secret(self, value: str, **_) -> None:
        try:
            signing.decode_secret(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class Website(Connector):
    """``POST /webhooks/website`` with ``{"events": [...]}``, one inbox record per event."""

    name = "website"
    settings_schema = WebsiteSettings
    kept_headers = ("webhook-id", "user-agent")

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        try:
            signing.verify(settings["webhook_secret"], request.header, request.body,
                           settings.get("tolerance_seconds", signing.DEFAULT_TOLERANCE))
        except signing.InvalidSignature as exc:
            raise SignatureError(str(exc)) from None

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise PayloadError("body is not JSON") from None
        events = payload.get("events") if isinstance(payload, dict) else payload
        if not isinstance(events, list) or not events:
            raise PayloadError('expected {"events": [...]} with at least one event')
        msg_id = request.header("webhook-id")
        deliveries = []
        for index, event in enumerate(events):
            if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
                raise PayloadError(f"events[{index}]: type must be one of {', '.join(EVENT_TYPES)}")
            key = str(event.get("id") or f"{msg_id}:{index}")
            body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
            deliveries.append(Delivery(key=key, body=body, topic=event["type"],
                                       occurred_at=aware_time(event.get("timestamp"))))
        return deliveries



@hookimpl
def register_connectors():
    return [Website()]
