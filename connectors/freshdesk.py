"""Freshdesk automation-rule webhooks: unsigned JSON authenticated with HTTP Basic credentials.

Freshdesk signs nothing. The "Trigger webhook" action of an automation rule is set to
require authentication with a username and password the hub knows, and to send the JSON
template documented in the README (everything under ``"freshdesk_webhook"``). Each
request is one inbox record keyed by ticket id, update time and status.

``hub sync freshdesk`` pulls contacts and tickets from the REST API (topics ``api:contact``
and ``api:ticket``), authenticated with an API key.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qs, urlsplit

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, Stream, WebhookRequest,
                           aware_time, constant_time_equal)
from hub.hookspecs import hookimpl
from hub.paginators import LinkHeader
from hub.sync import NotSyncable

if TYPE_CHECKING:  # pragma: no cover
    import requests

log = logging.getLogger(__name__)

WRAPPER = "freshdesk_webhook"
TRIGGERED_EVENT = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_ ]*?)\s*:\s*(.*?)\s*\}")
CHANGE = re.compile(r"\{\s*from\s*:.*,\s*to\s*:.*\}")
PULLED_CONTACT = "api:contact"
PULLED_TICKET = "api:ticket"
#: the API's numbers for the built-in statuses and priorities, named as the webhook template renders them
STATUSES = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed"}
PRIORITIES = {1: "Low", 2: "Medium", 3: "High", 4: "Urgent"}
#: a list of tickets ends at page 300 ("You cannot access tickets beyond the 300th page")
TICKET_PAGES = 300
#: before any Freshdesk account: without ``updated_since`` the list holds only the last 30 days
EVER = "2000-01-01T00:00:00Z"


class FreshdeskSettings(ConnectorSettingsSchema):
    """``connectors.freshdesk``: the webhook's Basic credentials; helpdesk domain and API key to pull."""

    webhook_username = fields.String(required=True, validate=validate.Length(min=1))
    webhook_password = fields.String(required=True, validate=validate.Length(
        min=16, error="must be at least 16 characters (it is the only thing guarding the webhook)"))
    domain = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[A-Za-z0-9][A-Za-z0-9.-]*$", error="the helpdesk's host name alone, e.g. acme.freshdesk.com"))
    api_key = fields.String(load_default=None, allow_none=True)


class Freshdesk(Connector):
    """``POST /webhooks/freshdesk`` with Basic credentials: one record per rule firing."""

    name = "freshdesk"
    settings_schema = FreshdeskSettings

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored JSON, minus a webhook's ``ticket_updated_at`` that is not ISO 8601 with an offset.

        ``{{ticket.updated_at}}`` may render as ``Mon, 2 Mar, 2026 at 2:40 PM`` in the
        helpdesk's unnamed time zone; without it the mapping falls back to the time of receipt.
        A pulled ticket gains ``_derived`` (see :func:`ticket_terms`).
        """
        document = super().parse(body, topic)
        if topic == PULLED_TICKET and isinstance(document, dict):
            document["_derived"] = ticket_terms(document)
            return document
        ticket = document.get(WRAPPER) if isinstance(document, dict) else None
        if isinstance(ticket, dict) and aware_time(_text(ticket.get("ticket_updated_at")) or "") is None:
            ticket.pop("ticket_updated_at", None)
        return document

    def streams(self, settings: Mapping) -> list[Stream]:
        """Contacts and tickets by update time, 100 a page, following the ``Link`` header.

        The ticket list is sorted oldest update first and embeds the requester (its e-mail).
        https://developers.freshdesk.com/api/#list_all_tickets
        """
        missing = [] if settings.get("domain") or settings.get("api_base") else ["domain"]
        missing += [] if settings.get("api_key") else ["api_key"]
        if missing:
            raise NotSyncable(f"connector {self.name!r} needs {', '.join(missing)} in its configuration "
                              "to pull from the Freshdesk API")
        return [
            Stream("contacts", "contacts", "id", LinkHeader(), PULLED_CONTACT, cursor_field="updated_at",
                   cursor_param="_updated_since", params={"per_page": 100}),
            Stream("tickets", "tickets", "id", LinkHeader(), PULLED_TICKET, cursor_field="updated_at",
                   cursor_param="updated_since", params={
                       "per_page": 100, "order_by": "updated_at", "order_type": "asc", "include": "requester",
                       "updated_since": EVER}),
        ]

    def api_base(self, settings: Mapping) -> str:
        """``https://<domain>/api/v2`` unless ``api_base`` is set."""
        if settings.get("api_base") or not settings.get("domain"):
            return super().api_base(settings)
        return f"https://{settings['domain']}/api/v2"

    def http_session(self, settings: Mapping) -> "requests.Session":
        """HTTP Basic with the API key as user name and ``X`` as password.

        Freshdesk answers 429 with ``Retry-After`` once the minute's calls are spent (its
        ``X-Ratelimit-Remaining`` comes with no reset time), which ``hub sync`` honours.
        """
        session = super().http_session(settings)
        session.auth = (settings["api_key"], "X")
        session.hooks["response"].append(end_at_page_limit)
        return session

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


def ticket_terms(ticket: dict) -> dict:
    """A pulled ticket in the webhook template's terms, for the mapping.

    ``status`` and ``priority`` are the names the template renders (None for a custom
    status); ``key`` is the webhook's record key for the same version, so that both make
    one activity. ``change`` is ``ticket.solved`` (resolved or closed), ``ticket.updated``,
    or nothing for a ticket untouched since its creation, which the ``ticket.created`` rule
    only opens; ``opened_status`` is the status at creation, known only while untouched.
    """
    number = ticket.get("status")
    status = STATUSES.get(number)
    untouched = ticket.get("created_at") == ticket.get("updated_at")
    change = "ticket.solved" if number in (4, 5) else None if untouched else "ticket.updated"
    return {"status": status, "priority": PRIORITIES.get(ticket.get("priority")),
            "key": f"{ticket.get('id')}:{ticket.get('updated_at')}:{status or number}",
            "change": change, "opened_status": status if untouched else None}


def end_at_page_limit(response: "requests.Response", *args, **kwargs) -> "requests.Response":
    """Drop a ticket list's ``Link`` to a page past the 300th, which Freshdesk refuses (400).

    The run then ends at page 300 with the stream's cursor at the latest update it stored
    (the list is sorted by update time), and the next run carries on from there.
    """
    link = response.links.get("next", {}).get("url")
    if link and urlsplit(link).path.endswith("/tickets"):
        page = parse_qs(urlsplit(link).query).get("page", ["0"])[0]
        if page.isdigit() and int(page) > TICKET_PAGES:
            del response.headers["Link"]
            log.warning("Freshdesk lists at most %d pages of tickets; run hub sync again to pull the rest",
                        TICKET_PAGES)
    return response


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
