"""The store's tables as SQLAlchemy 2 typed models (SQLite and PostgreSQL).

The inbox is the source of truth; every other table is derived from it and can be
rebuilt by replaying it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: a 64-bit key that still autoincrements on SQLite (which only does so for INTEGER)
BigId = BigInteger().with_variant(Integer, "sqlite")


def machine_key(length: int) -> String:
    """A machine key (an id, an identifier, a source name): on PostgreSQL compared byte by byte
    (collation "C"), so index probes and foreign-key checks skip the locale's comparison
    (PostgreSQL only takes "C" and "POSIX" as byte order; even C.UTF-8 goes through strcoll)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


PENDING, PROCESSED, FAILED = "pending", "processed", "failed"
SUCCEEDED = "succeeded"
WEBHOOK, PULLED = "webhook", "pulled"


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is timezone.utc:
            return value
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is timezone.utc:  # PostgreSQL sessions run in UTC
            return value
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


def pending_index(name: str, *columns: str) -> Index:
    """An index of the pending rows only (partial on PostgreSQL and SQLite)."""
    where = text("status = 'pending'")
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


class InboxRecord(Base):
    """One raw inbound record, pushed (webhook) or pulled (sync), exactly as received.

    Written once (an erasure empties it); where it stands in processing is its :class:`InboxState`.
    """

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("connector", "key", name="uq_inbox_connector_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    connector: Mapped[str] = mapped_column(machine_key(64))
    kind: Mapped[str] = mapped_column(String(16), default=WEBHOOK)
    key: Mapped[str] = mapped_column(machine_key(255))
    topic: Mapped[str | None] = mapped_column(String(255))
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    occurred_at: Mapped[datetime | None]


class InboxState(Base):
    """Where one inbox record stands: pending (due at ``next_attempt_at``), processed, failed or erased.

    Apart from the record and narrow, because it changes and the record does not: PostgreSQL writes a
    whole new version of a row on each update, and marking a batch processed then rewrites some fifty
    bytes a record instead of the record with its body, and touches no index on the record's key.
    """

    __tablename__ = "inbox_state"
    __table_args__ = (
        # claims read it in (next_attempt_at, inbox_id) order: no other index gives that order, so the
        # planner takes this one even while its statistics still count processed rows as pending
        pending_index("ix_inbox_state_pending", "next_attempt_at", "inbox_id"),
    )

    inbox_id: Mapped[int] = mapped_column(BigId, ForeignKey("inbox.id"), primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]


class SyncCursor(Base):
    """Where a pull stream stopped; advanced in the same transaction that stores its page."""

    __tablename__ = "sync_cursors"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Profile(Base):
    """One real person. A merged-away profile keeps its row and points at the survivor."""

    __tablename__ = "profiles"
    __table_args__ = (Index("ix_profiles_updated", "updated_at", "id"),)

    id: Mapped[str] = mapped_column(machine_key(36), primary_key=True)
    merged_into: Mapped[str | None] = mapped_column(ForeignKey("profiles.id"), index=True)
    lifecycle_stage: Mapped[str | None] = mapped_column(String(32), index=True)
    lead_score: Mapped[float | None] = mapped_column(Float)
    churn_risk: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Identity(Base):
    """An identifier (``email``, ``phone``, ``<connector>_<object>_id``) owned by one profile."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("type", "value", name="uq_identities_type_value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    type: Mapped[str] = mapped_column(machine_key(64))
    value: Mapped[str] = mapped_column(machine_key(320))
    source: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Trait(Base):
    """A profile attribute with its provenance: the value with the newest source time wins."""

    __tablename__ = "traits"

    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    name: Mapped[str] = mapped_column(machine_key(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(64))
    observed_at: Mapped[datetime]
    inbox_id: Mapped[int | None] = mapped_column(BigId)


class Activity(Base):
    """One timeline entry in the unified vocabulary, unique by source and source id."""

    __tablename__ = "activities"
    __table_args__ = (
        UniqueConstraint("source", "source_id", "type", name="uq_activities_source"),
        Index("ix_activities_timeline", "profile_id", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    type: Mapped[str] = mapped_column(machine_key(64))
    source: Mapped[str] = mapped_column(machine_key(64))
    source_id: Mapped[str] = mapped_column(machine_key(255))
    occurred_at: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    inbox_id: Mapped[int | None] = mapped_column(BigId)


class Merge(Base):
    """A merge of two profiles with its evidence: the identifier and the inbox record."""

    __tablename__ = "merges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    survivor_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    merged_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    identifier_type: Mapped[str] = mapped_column(String(64))
    identifier_value: Mapped[str] = mapped_column(String(320))
    inbox_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the identifiers the merged profile held, ``[[type, value], ...]``, for an unmerge
    moved: Mapped[list | None] = mapped_column(JSON)


class Separation(Base):
    """Two profiles split by an unmerge: records never merge them again."""

    __tablename__ = "separations"
    __table_args__ = (UniqueConstraint("profile_a", "profile_b", name="uq_separations_pair"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile_a: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    profile_b: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    """A hashed identifier of an erased person: later records carrying it create nothing."""

    __tablename__ = "suppressions"

    identifier_hash: Mapped[str] = mapped_column(machine_key(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Change(Base):
    """One entry of the ordered change feed (profile created, updated, merged, erased, ...)."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    #: not indexed: the feed is read in id order, never by profile
    profile_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class FeedHorizon(Base):
    """How far the change feed was pruned (one row): changes up to ``pruned_through`` are gone."""

    __tablename__ = "feed_horizon"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    pruned_through: Mapped[int] = mapped_column(BigId, default=0)
    pruned_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboundSubscription(Base):
    """The state of one ``outbound:`` subscription (its settings live in ``hub.yaml``)."""

    __tablename__ = "outbound_subscriptions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the last change turned into deliveries; advanced in the transaction that creates them
    last_change_id: Mapped[int] = mapped_column(BigId, default=0)
    #: set when the receiver answered 410 Gone: nothing more is sent until re-enabled
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboundDelivery(Base):
    """One change to send to one subscription: pending, then succeeded or failed."""

    __tablename__ = "outbound_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription", "change_id", name="uq_outbound_deliveries_change"),
        pending_index("ix_outbound_deliveries_due", "next_attempt_at", "id"),
        pending_index("ix_outbound_deliveries_profile", "subscription", "profile_id", "change_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription: Mapped[str] = mapped_column(ForeignKey("outbound_subscriptions.name"))
    change_id: Mapped[int] = mapped_column(BigId, ForeignKey("changes.id"))
    type: Mapped[str] = mapped_column(String(64))
    profile_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None]
    #: the HTTP status of the last attempt (None when no answer came)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class StageStay(Base):
    """A profile's time in one lifecycle stage; ``exited_at`` is None while it is still there."""

    __tablename__ = "stage_history"
    __table_args__ = (
        Index("ix_stage_history_profile", "profile_id", "entered_at"),
        Index("ix_stage_history_entered", "stage", "entered_at"),
        Index("ix_stage_history_exited", "stage", "exited_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    stage: Mapped[str] = mapped_column(String(32))
    entered_at: Mapped[datetime]
    exited_at: Mapped[datetime | None]


class SegmentMember(Base):
    """A profile in a segment, since ``entered_at``."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_entered", "segment", "entered_at", "profile_id"),)

    segment: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True, index=True)
    entered_at: Mapped[datetime]


class TriggerMatch(Base):
    """A profile a trigger's rule holds for, since ``matched_at``; the trigger fired when the row was made."""

    __tablename__ = "trigger_matches"

    trigger: Mapped[str] = mapped_column(String(64), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True, index=True)
    matched_at: Mapped[datetime]
