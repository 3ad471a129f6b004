"""The unified vocabulary: what every mapping produces, whatever the platform."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

#: the timeline vocabulary; a type is never reused with another meaning
ACTIVITY_TYPES = (
    "customer.created", "customer.updated",
    "order.placed", "order.paid", "order.fulfilled", "order.cancelled", "order.refunded",
    "checkout.started", "checkout.abandoned",
    "payment.succeeded", "payment.failed", "payment.refunded",
    "subscription.started", "subscription.cancelled",
    "invoice.paid", "invoice.payment_failed",
    "email.subscribed", "email.unsubscribed", "email.delivered", "email.opened", "email.clicked",
    "email.bounced", "email.spam_reported",
    "ticket.opened", "ticket.updated", "ticket.solved", "satisfaction.rated",
    "page.viewed", "form.submitted",
)

#: profile traits with a fixed meaning; mappings may add others
KNOWN_TRAITS = ("email", "phone", "first_name", "last_name", "address", "locale", "email_consent",
                "company", "timezone", "country")

EMAIL_CONSENT = ("subscribed", "unsubscribed", "cleaned", "bounced", "spam_reported", "pending")


@dataclass
class UnifiedActivity:
    """One timeline entry: ``source_id`` is unique per source and type."""

    type: str
    source_id: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class UnifiedRecord:
    """What one inbox record says about one person."""

    source: str
    inbox_id: int
    observed_at: datetime
    identities: list[tuple[str, str]] = field(default_factory=list)
    traits: dict[str, Any] = field(default_factory=dict)
    activities: list[UnifiedActivity] = field(default_factory=list)
    #: identifiers this record retires from the person (an e-mail address change)
    retired: list[tuple[str, str]] = field(default_factory=list)


class _ActivitySchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(ACTIVITY_TYPES))
    source_id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    occurred_at = fields.AwareDateTime(required=True)
    properties = fields.Dict(keys=fields.String())


class _RecordSchema(Schema):
    source = fields.String(required=True)
    inbox_id = fields.Integer(required=True)
    observed_at = fields.AwareDateTime(required=True)
    identities = fields.List(fields.Tuple((fields.String(validate=validate.Length(min=1, max=64)),
                                           fields.String(validate=validate.Length(min=1, max=320)))))
    retired = fields.List(fields.Tuple((fields.String(), fields.String())))
    traits = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=64)))
    activities = fields.List(fields.Nested(_ActivitySchema))


_SCHEMA = _RecordSchema()


def validate_record(record: UnifiedRecord) -> UnifiedRecord:
    """Raise ``ValueError`` naming the field if the record breaks the unified schema."""
    errors = _SCHEMA.validate({
        "source": record.source, "inbox_id": record.inbox_id, "observed_at": record.observed_at.isoformat(),
        "identities": record.identities, "retired": record.retired, "traits": record.traits,
        "activities": [{"type": a.type, "source_id": a.source_id, "occurred_at": a.occurred_at.isoformat(),
                        "properties": a.properties} for a in record.activities],
    })
    consent = record.traits.get("email_consent")
    if consent is not None and consent not in EMAIL_CONSENT:
        errors["traits"] = {"email_consent": [f"must be one of {', '.join(EMAIL_CONSENT)}"]}
    if errors:
        raise ValueError(f"unified record breaks the schema: {errors}")
    return record


__all__ = ["ACTIVITY_TYPES", "EMAIL_CONSENT", "KNOWN_TRAITS", "UnifiedActivity", "UnifiedRecord",
           "ValidationError", "validate_record"]
