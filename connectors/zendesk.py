"""Zendesk webhooks: base64 HMAC-SHA256 over the signature timestamp header + raw body.

The signing secret is used verbatim as the HMAC key (it looks like base64 but is not
decoded). A webhook either subscribes to Zendesk events (fixed JSON schema with ``type``
``zen:event-type:...`` and an event ``id``) or is connected to a trigger or automation
(a JSON body the admin writes from placeholders). Each request is one inbox record.

``hub sync zendesk`` pulls users and tickets through the cursor-based incremental exports
(topics ``api:user`` and ``api:ticket``), authenticated with an API token.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, Stream, WebhookRequest,
                           constant_time_equal)
from hub.hookspecs import hookimpl
from hub.paginators import NextUrl
from hub.sync import NotSyncable, retry_after

if TYPE_CHECKING:  # pragma: no cover
    import requests

SIGNATURE = "X-Zendesk-Webhook-Signature"
TIMESTAMP = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION_ID = "X-Zendesk-Webhook-Invocation-Id"
EVENT_TYPE_PREFIX = "zen:event-type:"
PULLED_USER = "api:user"
PULLED_TICKET = "api:ticket"
#: Zendesk's ticket statuses (the API sends them in lower case); exports also say "deleted"
OPEN_STATUSES = ("new", "open", "pending", "hold")
SOLVED_STATUSES = ("solved", "closed")


class ZendeskSettings(ConnectorSettingsSchema):
    """``connectors.zendesk``: the webhook signing secret; subdomain, email and API token to pull."""

    webhook_secret = fields.String(required=True, validate=validate.Length(min=1))
    subdomain = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9-]*$", error="the subdomain alone (acme for acme.zendesk.com)"))
    email = fields.String(load_default=None, allow_none=True)
    api_token = fields.String(load_default=None, allow_none=True)


class Zendesk(Connector):
    """``POST /webhooks/zendesk``: one record per event-subscription or trigger request."""

    name = "zendesk"
    settings_schema = ZendeskSettings
    kept_headers = ("x-zendesk-account-id", "x-zendesk-webhook-id", "x-zendesk-webhook-invocation-id")

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored JSON; a pulled ticket gains ``_derived`` (see :func:`ticket_change`)."""
        document = super().parse(body, topic)
        if topic == PULLED_TICKET and isinstance(document, dict):
            document["_derived"] = ticket_change(document)
        return document

    def streams(self, settings: Mapping) -> list[Stream]:
        """Users and tickets from the cursor-based incremental exports, by update time.

        Zendesk wants ``start_time`` (unix seconds) on the first call, then only follows
        ``after_url`` until ``end_of_stream``; the next run starts at the latest ``updated_at``.
        https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
        """
        missing = [name for name in ("email", "api_token") if not settings.get(name)]
        if not settings.get("subdomain") and not settings.get("api_base"):
            missing.insert(0, "subdomain")
        if missing:
            raise NotSyncable(f"connector {self.name!r} needs {', '.join(missing)} in its configuration "
                              "to pull from the Zendesk API")
        export = NextUrl("after_url", end_field="end_of_stream")
        since = {"cursor_field": "updated_at", "cursor_param": "start_time", "cursor_format": "unix"}
        return [
            Stream("users", "incremental/users/cursor.json", "id", export, PULLED_USER, records_path="users",
                   params={"start_time": 0}, **since),
            Stream("tickets", "incremental/tickets/cursor.json", "id", export, PULLED_TICKET,
                   records_path="tickets", params={"start_time": 0, "exclude_deleted": "true"}, **since),
        ]

    def api_base(self, settings: Mapping) -> str:
        """``https://<subdomain>.zendesk.com/api/v2`` unless ``api_base`` is set."""
        if settings.get("api_base") or not settings.get("subdomain"):
            return super().api_base(settings)
        return f"https://{settings['subdomain']}.zendesk.com/api/v2"

    def http_session(self, settings: Mapping) -> "requests.Session":
        """HTTP Basic with ``<email>/token`` and the API token."""
        session = super().http_session(settings)
        session.auth = (f"{settings['email']}/token", settings["api_token"])
        return session

    def throttle(self, response: "requests.Response") -> float:
        """Wait out the minute when the account-wide budget is spent (``ratelimit-remaining: 0``).

        The exports' own limit (10 calls a minute) answers 429 with ``Retry-After``, which
        ``hub sync`` honours. https://developer.zendesk.com/api-reference/introduction/rate-limits/
        """
        if response.headers.get("ratelimit-remaining", "").strip() != "0":
            return 0.0
        return retry_after(response.headers.get("ratelimit-reset")) or 0.0

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


def ticket_change(ticket: dict) -> dict:
    """What a pulled ticket version adds to the timeline, the way the webhooks tell it.

    ``change`` is ``ticket.solved`` for a solved or closed ticket, ``ticket.updated`` for
    another known status, and nothing for a ticket untouched since its creation (the
    ``ticket.created`` event only opens it) or deleted. ``opened_status`` is the status at
    creation, known only while the ticket is untouched.
    """
    status = ticket.get("status")
    untouched = ticket.get("created_at") == ticket.get("updated_at")
    change = None
    if status in SOLVED_STATUSES:
        change = "ticket.solved"
    elif status in OPEN_STATUSES and not untouched:
        change = "ticket.updated"
    return {"change": change, "opened_status": status if untouched else None}


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
