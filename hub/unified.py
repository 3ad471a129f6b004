"""The unified vocabulary: what every mapping produces, whatever the platform."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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
    #: (activity type, source id) of earlier activities of the same source that name the person,
    #: for records that carry no identifier (a refund names only its order)
    about: list[tuple[str, str]] = field(default_factory=list)


_ACTIVITY_SET = frozenset(ACTIVITY_TYPES)
_CONSENT_SET = frozenset(EMAIL_CONSENT)


def validate_record(record: UnifiedRecord) -> UnifiedRecord:
    """Raise ``ValueError`` naming the field if the record breaks the unified schema.

    Runs once per record on the hot path, so it is plain code; the structure it checks
    against is the one the mapping files' marshmallow schema enforces at start.
    """
    problems = []
    if record.observed_at.tzinfo is None:
        problems.append("observed_at: must be timezone-aware")
    for i, (kind, value) in enumerate(record.identities + record.retired):
        if not (0 < len(kind) <= 64 and 0 < len(value) <= 320):
            problems.append(f"identities[{i}]: type and value must be 1-64 and 1-320 characters")
    for name in record.traits:
        if not 0 < len(name) <= 64:
            problems.append(f"traits.{name}: name must be 1-64 characters")
    consent = record.traits.get("email_consent")
    if consent is not None and consent not in _CONSENT_SET:
        problems.append(f"traits.email_consent: must be one of {', '.join(EMAIL_CONSENT)}")
    for i, activity in enumerate(record.activities):
        if activity.type not in _ACTIVITY_SET:
            problems.append(f"activities[{i}].type: {activity.type!r} is not in the vocabulary")
        if not 0 < len(activity.source_id) <= 255:
            problems.append(f"activities[{i}].source_id: must be 1-255 characters")
        if activity.occurred_at.tzinfo is None:
            problems.append(f"activities[{i}].occurred_at: must be timezone-aware")
        if not isinstance(activity.properties, dict):
            problems.append(f"activities[{i}].properties: must be a mapping")
    if problems:
        raise ValueError("unified record breaks the schema: " + "; ".join(problems))
    return record


__all__ = ["ACTIVITY_TYPES", "EMAIL_CONSENT", "KNOWN_TRAITS", "UnifiedActivity", "UnifiedRecord",
           "validate_record"]
