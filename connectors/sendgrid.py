"""Twilio SendGrid Event Webhook: ECDSA P-256/SHA-256 signatures over timestamp + raw body.

The account's verification key (base64 DER SubjectPublicKeyInfo, as shown under Mail
Settings) checks ``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER signature) over the
``X-Twilio-Email-Event-Webhook-Timestamp`` value followed by the body. The body is a JSON
array of events; each becomes one inbox record keyed by ``sg_event_id``.

``hub sync sendgrid`` pulls the suppression lists (bounces, global unsubscribes, spam
reports; topics ``api:bounce``, ``api:unsubscribe``, ``api:spam_report``) with an API key.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from marshmallow import ValidationError, fields, validates

from hub.config import ConnectorSettingsSchema
from hub.connector import Connector, Delivery, PayloadError, SignatureError, Stream, WebhookRequest
from hub.hookspecs import hookimpl
from hub.paginators import Offset
from hub.sync import NotSyncable

if TYPE_CHECKING:  # pragma: no cover
    import requests

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
PEM_ARMOUR = ("-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----")
API_BASE = "https://api.sendgrid.com/v3"
#: the suppression lists pulled: stream name, path, topic
SUPPRESSIONS = (("bounces", "suppression/bounces", "api:bounce"),
                ("unsubscribes", "suppression/unsubscribes", "api:unsubscribe"),
                ("spam_reports", "suppression/spam_reports", "api:spam_report"))
#: entries a page (``limit``): SendGrid's maximum
ENTRIES_PER_PAGE = 500
#: the current unix time (a module attribute, so that tests can fix it)
clock = time.time


class SendGridSettings(ConnectorSettingsSchema):
    """``connectors.sendgrid``: the Event Webhook verification key; an API key to pull."""

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

    def streams(self, settings: Mapping) -> list[Stream]:
        """The suppression lists by ``created`` (unix seconds), :data:`ENTRIES_PER_PAGE` a page.

        An entry has no id: its key is the address (``hub sync`` adds ``created``). The lists
        send no total, so a run ends on an empty page.
        https://www.twilio.com/docs/sendgrid/api-reference/bounces-api/retrieve-all-bounces
        """
        if not settings.get("api_key"):
            raise NotSyncable(f"connector {self.name!r} needs api_key in its configuration "
                              "to pull from the SendGrid API")
        pages = Offset(limit=ENTRIES_PER_PAGE, limit_param="limit", total_field="")  # "": the body is the bare list
        return [Stream(name, path, "email", pages, topic, cursor_field="created", cursor_param="start_time",
                       cursor_format="unix") for name, path, topic in SUPPRESSIONS]

    def api_base(self, settings: Mapping) -> str:
        """``https://api.sendgrid.com/v3`` unless ``api_base`` is set."""
        return super().api_base(settings) or API_BASE

    def http_session(self, settings: Mapping) -> "requests.Session":
        """Bearer authentication with the API key."""
        session = super().http_session(settings)
        session.headers.update({"Authorization": f"Bearer {settings['api_key']}", "Accept": "application/json"})
        return session

    def throttle(self, response: "requests.Response") -> float:
        """Wait until ``X-RateLimit-Reset`` (unix seconds) once ``X-RateLimit-Remaining`` is 0.

        https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits
        """
        reset = response.headers.get("X-RateLimit-Reset", "")
        if response.headers.get("X-RateLimit-Remaining", "").strip() != "0" or not reset.strip().isdigit():
            return 0.0
        return max(0.0, int(reset) - clock())


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
