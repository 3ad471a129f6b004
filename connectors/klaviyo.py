"""Klaviyo system webhooks: hex HMAC-SHA256 over the raw body followed by the timestamp header.

One request carries ``{"meta": {...}, "data": [events...]}``; each event becomes one inbox
record keyed by its ``external_id`` (the Klaviyo event id). ``meta.klaviyo_webhook_id`` must
match the ``Klaviyo-Webhook-Id`` header. Flow webhooks (the unsigned "Webhook" action inside
a flow) are a different thing and are not accepted here.

``hub sync klaviyo`` pulls profiles (topic ``api:profile``) and events (``api:event``) from
the JSON:API at https://a.klaviyo.com/api with a private API key and a pinned revision.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

import requests
from marshmallow import fields, validate

from hub.config import ConnectorSettingsSchema
from hub.connector import (Connector, Delivery, PayloadError, SignatureError, Stream, WebhookRequest,
                           aware_time, constant_time_equal)
from hub.hookspecs import hookimpl
from hub.paginators import NextUrl, field_at
from hub.sync import NotSyncable

SIGNATURE = "Klaviyo-Signature"
TIMESTAMP = "Klaviyo-Timestamp"
WEBHOOK_ID = "Klaviyo-Webhook-Id"
API_BASE = "https://a.klaviyo.com/api"
#: the API revision every call asks for (https://developers.klaviyo.com/en/docs/api_versioning_and_deprecation_policy)
REVISION = "2026-04-15"
PULLED_PROFILE = "api:profile"
PULLED_EVENT = "api:event"
#: e-mail consent a profile's marketing suppression reason means, before its ``consent``
SUPPRESSION_CONSENT = {"HARD_BOUNCE": "bounced", "INVALID_EMAIL": "bounced", "SPAM_COMPLAINT": "spam_reported",
                       "USER_SUPPRESSED": "unsubscribed"}
PROFILE_CONSENT = {"SUBSCRIBED": "subscribed", "UNSUBSCRIBED": "unsubscribed"}
#: e-mail consent an event of these Klaviyo metrics means (as the webhook mapping's topics)
EVENT_CONSENT = {"Subscribed to List": "subscribed", "Subscribed to Email Marketing": "subscribed",
                 "Unsubscribed from List": "unsubscribed", "Unsubscribed from Email Marketing": "unsubscribed",
                 "Unsubscribed": "unsubscribed", "Bounced Email": "bounced",
                 "Marked Email as Spam": "spam_reported"}


class KlaviyoSettings(ConnectorSettingsSchema):
    """``connectors.klaviyo``: the webhook signing secret; a private API key to pull."""

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

    def parse(self, body: bytes, topic: str | None) -> Any:
        """The stored JSON; pulled records are shaped for the mapping (see :func:`pulled`)."""
        document = super().parse(body, topic)
        return pulled(document, topic) if isinstance(document, dict) else document

    def streams(self, settings: Mapping) -> list[Stream]:
        """Profiles by ``updated`` and events by ``datetime``, following ``links.next``.

        Their cursors go in a ``filter`` expression, which :class:`KlaviyoSession` writes.
        https://developers.klaviyo.com/en/reference/get_profiles,
        https://developers.klaviyo.com/en/reference/get_events
        """
        if not settings.get("api_key"):
            raise NotSyncable(f"connector {self.name!r} needs api_key in its configuration "
                              "to pull from the Klaviyo API")
        return [
            Stream("profiles", "profiles", "id", NextUrl("links.next"), PULLED_PROFILE, records_path="data",
                   cursor_field="attributes.updated", cursor_param="updated-since",
                   params={"page[size]": 100, "additional-fields[profile]": "subscriptions", "sort": "updated"}),
            Stream("events", "events", "id", NextUrl("links.next"), PULLED_EVENT, records_path="data",
                   cursor_field="attributes.datetime", cursor_param="datetime-since",
                   params={"include": "metric", "fields[metric]": "name", "sort": "datetime"}),
        ]

    def api_base(self, settings: Mapping) -> str:
        """``https://a.klaviyo.com/api`` unless ``api_base`` is set."""
        return super().api_base(settings) or API_BASE

    def http_session(self, settings: Mapping) -> "requests.Session":
        """A :class:`KlaviyoSession` sending the private key and the pinned revision."""
        session = KlaviyoSession()
        session.headers.update({"Authorization": f"Klaviyo-API-Key {settings['api_key']}",
                                "revision": REVISION, "Accept": "application/vnd.api+json"})
        return session


def _second_before(moment: str) -> str:
    """The ISO 8601 time one second before ``moment`` (``moment`` itself if unreadable)."""
    parsed = aware_time(moment)
    return (parsed - timedelta(seconds=1)).isoformat() if parsed else moment


#: stand-in query parameters for a stream's cursor, and the ``filter`` each becomes. Profiles
#: allow only ``greater-than`` on ``updated``: one second earlier keeps the boundary second
#: (versions already stored are skipped by their key).
CURSOR_FILTERS: dict[str, Callable[[str], str]] = {
    "updated-since": lambda moment: f"greater-than(updated,{_second_before(moment)})",
    "datetime-since": lambda moment: f"greater-or-equal(datetime,{moment})",
}


class KlaviyoSession(requests.Session):
    """A session that speaks two JSON:API features ``hub sync`` does not know.

    ``hub sync`` sends a cursor as one query parameter; Klaviyo wants it inside ``filter``
    (https://developers.klaviyo.com/en/docs/filtering_), so the stand-ins of
    :data:`CURSOR_FILTERS` are rewritten here. And ``hub sync`` keeps each record alone, so
    the attributes of ``included`` resources (an event's metric name) are copied into the
    relationships that point at them.
    """

    def request(self, method, url, *args, **kwargs):
        """Send with cursor filters written out; answer with ``included`` inlined."""
        params = dict(kwargs.get("params") or {})
        for name, expression in CURSOR_FILTERS.items():
            if name in params:
                params["filter"] = expression(params.pop(name))
        kwargs["params"] = params
        response = super().request(method, url, *args, **kwargs)
        if response.ok:
            inline_included(response)
        return response


def inline_included(response: "requests.Response") -> None:
    """Copy each ``included`` resource's attributes into the relationships of ``data`` naming it."""
    try:
        document = response.json()
    except ValueError:
        return
    included = document.get("included") if isinstance(document, dict) else None
    if not isinstance(included, list) or not isinstance(document.get("data"), list):
        return
    found = {(item.get("type"), item.get("id")): item.get("attributes") for item in included
             if isinstance(item, dict)}
    for record in document["data"]:
        relationships = record.get("relationships") if isinstance(record, dict) else None
        for relation in relationships.values() if isinstance(relationships, dict) else ():
            linkage = relation.get("data") if isinstance(relation, dict) else None
            if isinstance(linkage, dict) and (linkage.get("type"), linkage.get("id")) in found:
                linkage["attributes"] = found[(linkage.get("type"), linkage.get("id"))]
    response._content = json.dumps(document).encode()  # what .json() reads (requests has no setter)


def pulled(document: dict, topic: str | None) -> dict:
    """A pulled record as the mapping reads it; a webhook's record is returned unchanged.

    A profile gains ``_derived.email_consent`` (its marketing suppression, else its consent).
    An event becomes the webhooks' shape, ``{"payload": {"data": <event>}}``, with
    ``_derived.metric`` (the metric's name) and ``_derived.email_consent``.
    """
    if topic == PULLED_PROFILE:
        marketing = field_at(document, "attributes.subscriptions.email.marketing")
        marketing = marketing if isinstance(marketing, dict) else {}
        suppressed = [SUPPRESSION_CONSENT.get(item.get("reason")) for item in marketing.get("suppression") or ()
                      if isinstance(item, dict)]
        consent = next(filter(None, suppressed), PROFILE_CONSENT.get(marketing.get("consent")))
        return {**document, "_derived": {"email_consent": consent}}
    if topic == PULLED_EVENT:
        metric = field_at(document, "relationships.metric.data.attributes.name")
        metric = metric if isinstance(metric, str) else None
        return {"payload": {"data": document},
                "_derived": {"metric": metric, "email_consent": EVENT_CONSENT.get(metric)}}
    return document


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
