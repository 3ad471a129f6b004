"""Marshmallow schemas of every API parameter and response; they also write the OpenAPI document."""
from __future__ import annotations

from datetime import timezone

import marshmallow as ma
from marshmallow import fields, validate

from hub.unified import ACTIVITY_TYPES

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
#: no NUL character (PostgreSQL text cannot hold one); documented as a pattern
NO_NUL = validate.Regexp(r"^[^\x00]*$", error="must not contain NUL characters")
#: cursors are URL-safe base64 without padding
CURSOR = validate.Regexp(r"^[A-Za-z0-9_-]*$", error="malformed cursor (pass next_cursor from the previous page)")


def text(max_length: int, description: str, **kwargs) -> fields.String:
    """An optional query string of at most ``max_length`` characters, without NUL."""
    return fields.String(validate=[validate.Length(max=max_length), NO_NUL],
                         metadata={"description": description}, **kwargs)


class UTCDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time; without an offset it is taken as UTC. Loaded in UTC."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=timezone.utc, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(timezone.utc)
        except OverflowError:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


class NoArgsSchema(ma.Schema):
    """No query parameter (any given one is refused as unknown)."""


class PageArgsSchema(ma.Schema):
    """``limit`` and ``cursor``, common to every list."""

    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT),
                           metadata={"description": f"Items per page, 1 to {MAX_LIMIT}"})
    cursor = fields.String(validate=[validate.Length(max=512), CURSOR], metadata={
        "description": "`next_cursor` of the previous page (opaque); omit for the first page"})


class ProfileListArgsSchema(PageArgsSchema):
    """Filters of ``GET /profiles``; several filters all apply."""

    email = text(320, "An e-mail address, compared trimmed and lower-cased")
    phone = text(64, "A phone number in any format; compared in E.164 (default region from config)")
    identifier = text(400, "`TYPE:VALUE`, e.g. `shopify_customer_id:101` (a bare e-mail or phone also works)")
    lifecycle_stage = text(32, "Profiles currently in this lifecycle stage")
    segment = text(64, "Profiles in this segment now: a configured segment name (any other answers 400)")
    updated_since = UTCDateTime(metadata={"description": "Profiles updated at or after this ISO 8601 time "
                                                         "(UTC when no offset is given)"})


class ProfileArgsSchema(ma.Schema):
    """Options of ``GET /profiles/{id}``."""

    provenance = fields.Boolean(load_default=False, metadata={
        "description": "Give each trait as `{value, source, observed_at}` instead of its bare value"})


class TimelineArgsSchema(PageArgsSchema):
    """Filters of ``GET /profiles/{id}/timeline``."""

    type = fields.String(validate=validate.OneOf(ACTIVITY_TYPES, error="{input!r} is not an activity type "
                                                                        "of the unified vocabulary"),
                         metadata={"description": "Only activities of this unified type"})
    source = text(64, "Only activities from this connector, e.g. `shopify`")


class IdentityRefSchema(ma.Schema):
    """An identifier as embedded in a profile."""

    type = fields.String(required=True, metadata={"description": "`email`, `phone` or `<connector>_<object>_id`"})
    value = fields.String(required=True)
    source = fields.String(required=True, metadata={"description": "Connector that first reported it"})


class IdentitySchema(IdentityRefSchema):
    """An identifier with the times it was first and last seen."""

    first_seen_at = fields.DateTime(required=True)
    last_seen_at = fields.DateTime(required=True)


class ChurnRiskSchema(ma.Schema):
    """Churn risk from 0 to 1 with the factors behind it."""

    score = fields.Float(required=True, validate=validate.Range(min=0, max=1))
    factors = fields.List(fields.Dict(), required=True)


class ProfileSchema(ma.Schema):
    """One person, as in the public contract (design section 3)."""

    id = fields.String(required=True)
    traits = fields.Dict(keys=fields.String(), required=True, metadata={
        "description": "Trait name to value; with `provenance=1` to `{value, source, observed_at}`"})
    identities = fields.List(fields.Nested(IdentityRefSchema), required=True)
    lifecycle_stage = fields.String(required=True, allow_none=True)
    lead_score = fields.Float(required=True, allow_none=True)
    churn_risk = fields.Nested(ChurnRiskSchema, required=True, allow_none=True)
    metrics = fields.Dict(keys=fields.String(), required=True, metadata={
        "description": "`orders_count`, `total_spent`, `currency`, `last_order_at`, `open_tickets`, "
                       "`first_seen_at`, `last_seen_at`, ..."})
    segments = fields.List(fields.String(), required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class ActivitySchema(ma.Schema):
    """One timeline entry in the unified vocabulary."""

    type = fields.String(required=True, validate=validate.OneOf(ACTIVITY_TYPES))
    source = fields.String(required=True)
    source_id = fields.String(required=True)
    occurred_at = fields.DateTime(required=True)
    properties = fields.Dict(keys=fields.String(), required=True)


class ProfilePageSchema(ma.Schema):
    """A page of profiles."""

    items = fields.List(fields.Nested(ProfileSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "Cursor of the next page; null on the last page"})


class TimelinePageSchema(ma.Schema):
    """A page of a timeline, newest first."""

    items = fields.List(fields.Nested(ActivitySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "Cursor of the next page; null on the last page"})


class IdentityPageSchema(ma.Schema):
    """Every identifier of a profile (one page: a profile holds few)."""

    items = fields.List(fields.Nested(IdentitySchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={"description": "Always null"})


class MergeSchema(ma.Schema):
    """A merge into the person, with its evidence."""

    survivor_id = fields.String(required=True)
    merged_id = fields.String(required=True)
    identifier_type = fields.String(required=True)
    identifier_value = fields.String(required=True)
    inbox_id = fields.Integer(required=True, allow_none=True)
    merged_at = fields.DateTime(required=True)


class InboxRecordSchema(ma.Schema):
    """A raw inbound record, exactly as received."""

    id = fields.Integer(required=True)
    connector = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": "`webhook` or `pulled`"})
    key = fields.String(required=True, metadata={"description": "The platform's delivery id (idempotency key)"})
    topic = fields.String(required=True, allow_none=True)
    received_at = fields.DateTime(required=True)
    status = fields.String(required=True)
    headers = fields.Dict(keys=fields.String(), required=True)
    body = fields.String(required=True)
    body_encoding = fields.String(required=True, validate=validate.OneOf(("utf-8", "base64")))


class ExportSchema(ma.Schema):
    """Everything held on one person."""

    profile = fields.Nested(ProfileSchema, required=True, metadata={"description": "Traits with provenance"})
    merged_ids = fields.List(fields.String(), required=True, metadata={
        "description": "Profile ids merged into this one (they answer 301 to it)"})
    identities = fields.List(fields.Nested(IdentitySchema), required=True)
    timeline = fields.List(fields.Nested(ActivitySchema), required=True, metadata={"description": "Newest first"})
    merges = fields.List(fields.Nested(MergeSchema), required=True)
    inbox = fields.List(fields.Nested(InboxRecordSchema), required=True, metadata={
        "description": "Every raw record the profile was derived from or that names one of its identifiers"})
