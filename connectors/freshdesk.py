"""Freshdesk automation-rule webhooks: unsigned JSON authenticated with HTTP Basic credentials.

Freshdesk signs nothing. The "Trigger webhook" action of an automation rule is set to
require authentication with a username and password the hub knows, and to send the JSON
template documented in the README (everything under ``"freshdesk_webhook"``). Each
request is one inbox record keyed by ticket id, update time and status.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Mapping

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, WebhookRequest, aware_time,
                           constant_time_equal)
from hub.hookspecs import hookimpl

WRAPPER = "freshdesk_webhook"
TRIGGERED_EVENT = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*:\s*(.*?)\s*\}")
CHANGE = re.compile(r"\{\s*from\s*:.*,\s*to\s*:.*\}")


class FreshdeskSettings(ConnectorSettingsSchema):
    webhook_username = fields.String(required=True, validate=validate.Length(min=1))
    webhook_password = fields.String(required=True, validate=validate.Length(
        min=16, error="must be at least 16 characters (it is the only thing guarding the webhook)"))
    domain = fields.String(load_default=None, allow_none=True)
    api_key = fields.String(load_default=None, allow_none=True)


class Freshdesk(Connector):
    """``POST /webhooks/freshdesk`` with Basic credentials: one record per rule firing."""

    name = "freshdesk"
    settings_schema = FreshdeskSettings

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored JSON, minus a ``ticket_updated_at`` that is not ISO 8601 with an offset.

        ``{{ticket.updated_at}}`` may render as ``Mon, 2 Mar, 2026 at 2:40 PM`` in the
        helpdesk's unnamed time zone; without it the mapping falls back to the time of receipt.
        """
        document = super().parse(body, topic)
        ticket = document.get(WRAPPER) if isinstance(document, dict) else None
        if isinstance(ticket, dict) and aware_time(_text(ticket.get("ticket_updated_at")) or "") is None:
            ticket.pop("ticket_updated_at", None)
        return document

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Compare both parts of the Basic credentials in constant time."""
        credentials = basic_credentials(request.header("Authorization"))
        if credentials is None:
            raise SignatureError("missing Basic credentials in the Authorization header")
        username, password = credentials
        user_ok = constant_time_equal(settings["webhook_username"], username)
        password_ok = constant_time_equal(settings["webhook_password"], password)
        if not (user_ok & password_ok):
            raise SignatureError("wrong Basic credentials")

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """Key ``<ticket_id>:<ticket_updated_at>:<ticket_status>``; topic from ``triggered_event``."""
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise PayloadError("body is not JSON (set the rule's encoding to JSON)") from None
        ticket = payload.get(WRAPPER) if isinstance(payload, dict) else None
        if not isinstance(ticket, dict):
            raise PayloadError(f'expected {{"{WRAPPER}": {{...}}}}')
        ticket_id = _text(ticket.get("ticket_id"))
        updated_at = _text(ticket.get("ticket_updated_at"))
        if not ticket_id or not updated_at:
            raise PayloadError(f"{WRAPPER}.ticket_id and {WRAPPER}.ticket_updated_at are required")
        key = f"{ticket_id}:{updated_at}:{_text(ticket.get('ticket_status')) or ''}"
        if len(key) > 255:
            raise PayloadError("ticket_id, ticket_updated_at and ticket_status exceed 255 characters")
        return [Delivery(key=key, body=request.body, topic=topic(ticket.get("triggered_event")),
                         occurred_at=aware_time(updated_at))]


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic ...`` header, or None."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


def topic(triggered_event) -> str:
    """``ticket.<something>`` from ``{{triggered_event}}`` (e.g. ``{status:{from:2,to:4}}``).

    ``{ticket_action:created}`` -> ``ticket.created``; ``{note_type:public}`` ->
    ``ticket.note_added``; ``{<property>:{from:..,to:..}}`` -> ``ticket.<property>_changed``;
    another ``{<name>:<value>}`` -> ``ticket.<name>``; anything else -> ``ticket.updated``.
    """
    match = TRIGGERED_EVENT.fullmatch(triggered_event.strip()) if isinstance(triggered_event, str) else None
    if match is None:
        return "ticket.updated"
    name, value = _slug(match.group(1)), match.group(2)
    if name == "ticket_action" and _slug(value):
        return f"ticket.{_slug(value)}"
    if name == "note_type":
        return "ticket.note_added"
    if CHANGE.fullmatch(value):
        return f"ticket.{name}_changed"
    return f"ticket.{name}"


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")


def _text(value) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value).strip() or None



@hookimpl
def register_connectors():
    return [Freshdesk()]
