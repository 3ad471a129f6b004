"""Twilio SendGrid Event Webhook: ECDSA P-256/SHA-256 signatures over timestamp + raw body.

The account's verification key (base64 DER SubjectPublicKeyInfo, as shown under Mail
Settings) checks ``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER signature) over the
``X-Twilio-Email-Event-Webhook-Timestamp`` value followed by the body. The body is a JSON
array of events; each becomes one inbox record keyed by ``sg_event_id``.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from datetime import datetime, timezone
from typing import Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from marshmallow import ValidationError, fields, validates

from hub.config import ConnectorSettingsSchema
from hub.connector import Connector, Delivery, PayloadError, SignatureError, WebhookRequest
from hub.hookspecs import hookimpl

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
PEM_ARMOUR = ("-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----")


class SendGridSettings(ConnectorSettingsSchema):
    verification_key = fields.String(required=True)
    api_key = fields.String(load_default=None, allow_none=True)

    @validates("verification_key")
    def _key(self, value: str, **_) -> None:
        try:
            public_key(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class SendGrid(Connector):
    """``POST /webhooks/sendgrid``: a signed batch of email events, one record per event."""

    name = "sendgrid"
    settings_schema = SendGridSettings
    kept_headers = ("x-twilio-email-event-webhook-timestamp",)

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Verify the ECDSA signature of ``timestamp + body`` with the verification key."""
        signature = request.header(SIGNATURE)
        stamp = request.header(TIMESTAMP)
        if not signature or not stamp:
            raise SignatureError(f"missing {SIGNATURE} or {TIMESTAMP} header")
        try:
            decoded = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(f"{SIGNATURE} is not base64") from None
        key = public_key(settings["verification_key"])
        try:
            key.verify(decoded, stamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SignatureError(f"{SIGNATURE} does not match") from None

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """One delivery per event: key ``sg_event_id``, topic ``event``, time ``timestamp``."""
        try:
            events = json.loads(request.body)
        except ValueError:
            raise PayloadError("body is not JSON") from None
        if not isinstance(events, list) or not events:
            raise PayloadError("expected a JSON array with at least one event")
        return [_delivery(index, event) for index, event in enumerate(events)]


@functools.lru_cache(maxsize=8)
def public_key(value: str) -> ec.EllipticCurvePublicKey:
    """Load a base64 DER (or PEM) P-256 public key; ValueError if it is anything else."""
    text = value
    for armour in PEM_ARMOUR:
        text = text.replace(armour, "")
    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a base64 DER public key (copy the verification key from Mail Settings)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 public key")
    return key


def _delivery(index: int, event) -> Delivery:
    if not isinstance(event, dict):
        raise PayloadError(f"[{index}] is not an object")
    topic = event.get("event")
    if not isinstance(topic, str) or not topic:
        raise PayloadError(f"[{index}].event must be a non-empty string")
    body = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    key = event.get("sg_event_id")
    if key is None:
        key = "sha256:" + hashlib.sha256(body).hexdigest()
    elif not isinstance(key, str) or not 0 < len(key) <= 255:
        raise PayloadError(f"[{index}].sg_event_id must be a string of 1 to 255 characters")
    return Delivery(key=key, body=body, topic=topic, occurred_at=_timestamp(event.get("timestamp")))


def _timestamp(value) -> datetime | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


@hookimpl
def register_connectors():
    return [SendGrid()]
