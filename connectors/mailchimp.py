"""Mailchimp audience webhooks: unsigned form posts authenticated by a secret URL key.

Mailchimp signs nothing; its documentation suggests a secret in the webhook URL. The hub
expects ``?key=<webhook_key>`` on every call, answers Mailchimp's validator ``GET`` with an
empty 200, and turns each form-encoded ``POST`` (PHP-style bracket keys such as
``data[merges][FNAME]``) into one record whose body is the nested structure as JSON.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Mapping
from urllib.parse import parse_qsl

from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, Reply, SignatureError, WebhookRequest,
                           constant_time_equal)
from hub.hookspecs import hookimpl

EVENT_TYPES = ("subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign")
FIRED_AT_FORMAT = "%Y-%m-%d %H:%M:%S"
KEY_PATTERN = re.compile(r"([^\[\]]+)((?:\[[^\[\]]+\])*)")


class MailchimpSettings(ConnectorSettingsSchema):
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
