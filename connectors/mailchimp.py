"""Mailchimp audience webhooks: unsigned form posts authenticated by a secret URL key.

Mailchimp signs nothing; its documentation suggests a secret in the webhook URL. The hub
expects ``?key=<webhook_key>`` on every call, answers Mailchimp's validator ``GET`` with an
empty 200, and turns each form-encoded ``POST`` (PHP-style bracket keys such as
``data[merges][FNAME]``) into one record whose body is the nested structure as JSON.

``hub sync mailchimp`` pulls the audience's members (topic ``api:member``) from the Marketing
API, HTTP Basic with the API key; its data center is the key's suffix (``-us6``).
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import parse_qsl, quote

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, Reply, SignatureError, Stream, WebhookRequest,
                           constant_time_equal)
from hub.hookspecs import hookimpl
from hub.paginators import Offset
from hub.sync import NotSyncable

if TYPE_CHECKING:  # pragma: no cover
    import requests

EVENT_TYPES = ("subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign")
FIRED_AT_FORMAT = "%Y-%m-%d %H:%M:%S"
KEY_PATTERN = re.compile(r"([^\[\]]+)((?:\[[^\[\]]+\])*)")
PULLED_MEMBER = "api:member"
#: member statuses that say something about e-mail consent (not "transactional" nor "archived")
CONSENT_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending")
#: members a page (``count``): Mailchimp's maximum
MEMBERS_PER_PAGE = 1000


class MailchimpSettings(ConnectorSettingsSchema):
    """``connectors.mailchimp``: the webhook URL key; API key and audience id to pull."""

    webhook_key = fields.String(required=True, validate=validate.Length(
        min=16, error="must be at least 16 characters (it is the only thing guarding the URL)"))
    api_key = fields.String(load_default=None, allow_none=True)
    list_id = fields.String(load_default=None, allow_none=True)


class Mailchimp(Connector):
    """``POST /webhooks/mailchimp?key=...``: one record per notification, keyed by its content."""

    name = "mailchimp"
    settings_schema = MailchimpSettings
    webhook_methods = ("POST",)
    #: a member id is per audience and per address: a person in two audiences, or who changed
    #: address, holds several
    identity_limits = {"mailchimp_member_id": 10}

    def preflight(self, request: WebhookRequest, settings: Mapping) -> Reply | None:
        """Answer the validator ``GET`` Mailchimp sends when the webhook is saved."""
        if request.method != "GET":
            return None
        return Reply(200, "") if _key_matches(request, settings) else Reply(401, "")

    def verify(self, request: WebhookRequest, settings: Mapping) -> None:
        """Accept only calls carrying the configured ``key`` query parameter."""
        if not _key_matches(request, settings):
            raise SignatureError("missing or wrong key query parameter")

    def split(self, request: WebhookRequest, settings: Mapping) -> list[Delivery]:
        """Decode the form into one record; the key is the SHA-256 of its canonical JSON."""
        notification = parse_form(request.body)
        kind = notification.get("type")
        if kind not in EVENT_TYPES:
            raise PayloadError(f"type must be one of {', '.join(EVENT_TYPES)}")
        occurred_at = _fired_at(notification.get("fired_at"))
        body = json.dumps(notification, sort_keys=True, separators=(",", ":")).encode()
        return [Delivery(key=hashlib.sha256(body).hexdigest(), body=body, topic=kind,
                         occurred_at=occurred_at)]

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored JSON; a pulled member gains ``_derived.email_consent`` (its status, if a consent)."""
        document = super().parse(body, topic)
        if topic == PULLED_MEMBER and isinstance(document, dict):
            status = document.get("status")
            document["_derived"] = {"email_consent": status if status in CONSENT_STATUSES else None}
        return document

    def streams(self, settings: Mapping) -> list[Stream]:
        """The audience's members by ``last_changed``, :data:`MEMBERS_PER_PAGE` a page.

        https://mailchimp.com/developer/marketing/api/list-members/list-members-info/
        """
        missing = [name for name in ("api_key", "list_id") if not settings.get(name)]
        if missing:
            raise NotSyncable(f"connector {self.name!r} needs {' and '.join(missing)} in its configuration "
                              "to pull from the Mailchimp API")
        if not settings.get("api_base") and not _data_center(settings["api_key"]):
            raise NotSyncable(f"connector {self.name!r}: api_key must end with its data center (like -us6)")
        return [Stream("members", f"lists/{quote(settings['list_id'], safe='')}/members", "id",
                       Offset(limit=MEMBERS_PER_PAGE), PULLED_MEMBER, records_path="members",
                       cursor_field="last_changed", cursor_param="since_last_changed",
                       params={"exclude_fields": "members._links"})]

    def api_base(self, settings: Mapping) -> str:
        """``https://<dc>.api.mailchimp.com/3.0``, ``<dc>`` from the API key, unless ``api_base`` is set."""
        data_center = _data_center(settings.get("api_key") or "")
        if settings.get("api_base") or not data_center:
            return super().api_base(settings)
        return f"https://{data_center}.api.mailchimp.com/3.0"

    def http_session(self, settings: Mapping) -> "requests.Session":
        """HTTP Basic: any user name, the API key as the password."""
        session = super().http_session(settings)
        session.auth = ("tributary", settings["api_key"])
        return session


def _data_center(api_key: str) -> str | None:
    """The data center an API key names after its last dash (``us6``), or None."""
    head, _, suffix = api_key.rpartition("-")
    return suffix if head and re.fullmatch(r"[a-z]+[0-9]+", suffix) else None


def _key_matches(request: WebhookRequest, settings: Mapping) -> bool:
    return constant_time_equal(settings["webhook_key"], request.query.get("key"))


def parse_form(body: bytes) -> dict:
    """Nest a form body with bracket keys: ``data[merges][FNAME]=x`` -> ``{"data": {"merges": ...}}``."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise PayloadError("body is not a URL-encoded form") from None
    tree: dict = {}
    for name, value in pairs:
        _insert(tree, _path(name), value)
    return tree


def _path(name: str) -> list[str]:
    match = KEY_PATTERN.fullmatch(name)
    if match is None:
        raise PayloadError(f"form field {name!r} is not a name with [bracket] parts")
    return [match.group(1), *re.findall(r"\[([^\[\]]+)\]", match.group(2))]


def _insert(tree: dict, path: list[str], value: str) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PayloadError(f"form field {path[0]!r} is both a value and a group")
    if isinstance(node.get(path[-1]), dict):
        raise PayloadError(f"form field {path[0]!r} is both a value and a group")
    node[path[-1]] = value


def _fired_at(value) -> datetime:
    try:
        return datetime.strptime(value, FIRED_AT_FORMAT).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        raise PayloadError("fired_at must be YYYY-MM-DD HH:MM:SS") from None


@hookimpl
def register_connectors():
    return [Mailchimp()]
