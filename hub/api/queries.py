"""Reading profiles for the API: keyset pages and batched loading (no query per profile).

A page of profiles, or one profile, is one query whatever its size: each profile row comes
with its identities, traits and segments aggregated as JSON by correlated subqueries.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from sqlalchemy import JSON, Connection, Row, Select, and_, bindparam, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from hub.api.cursors import PROFILES, TIMELINE, decode_cursor, encode_cursor
from hub.identity import IdentityRules
from hub.lookup import parse_identifier
from hub.models import Activity, Identity, Profile, SegmentMember, Trait


@dataclass
class Page:
    """Rows of one page and the cursor of the next one (None on the last page)."""

    rows: list
    next_cursor: str | None


def identity_filters(rules: IdentityRules, args: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """The normalised ``(type, value)`` pairs asked for; None if one can match nobody."""
    wanted = []
    if args.get("email") is not None:
        wanted.append(("email", args["email"]))
    if args.get("phone") is not None:
        wanted.append(("phone", args["phone"]))
    if args.get("identifier") is not None:
        wanted.append(parse_identifier(args["identifier"]))
    pairs = []
    for kind, value in wanted:
        normal = rules.normalize(kind, value)
        if normal is None or not kind:
            return None  # junk or unreadable: no profile can hold it
        pairs.append((kind, normal))
    return pairs


def profile_page(connection: Connection, rules: IdentityRules, args: Mapping[str, Any]) -> Page:
    """Surviving profiles matching ``args``, ordered by ``(updated_at, id)``, one keyset page."""
    pairs = identity_filters(rules, args)
    if pairs is None:
        return Page([], None)
    params: dict[str, Any] = {"limit": args["limit"] + 1}
    for n, (kind, value) in enumerate(pairs):
        params.update({f"type{n}": kind, f"value{n}": value})
    if args.get("lifecycle_stage") is not None:
        params["stage"] = args["lifecycle_stage"]
    if args.get("updated_since") is not None:
        params["since"] = args["updated_since"]
    if args.get("segment") is not None:
        params["segment"] = args["segment"]
    if args.get("cursor") is not None:
        params["at"], params["key"] = decode_cursor(PROFILES, args["cursor"], str)
    query = _page_query(connection.dialect.name, len(pairs), *(name in params for name in FILTERS))
    limit = args["limit"]
    rows = list(connection.execute(query, params))
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], encode_cursor(PROFILES, last.updated_at, last.id))


#: the optional filters of a profile page, by parameter name
FILTERS = ("stage", "since", "segment", "at")


@functools.cache
def _page_query(dialect: str, identities: int, stage: bool, since: bool, segment: bool, after: bool) -> Select:
    """The page query for one combination of filters, built once (values are bound parameters)."""
    query = _documents_query(dialect).where(Profile.merged_into.is_(None))
    for n in range(identities):
        query = query.where(Profile.id.in_(select(Identity.profile_id).where(
            Identity.type == bindparam(f"type{n}"), Identity.value == bindparam(f"value{n}"))))
    if stage:
        query = query.where(Profile.lifecycle_stage == bindparam("stage"))
    if since:
        query = query.where(Profile.updated_at >= bindparam("since"))
    if segment:
        query = query.where(Profile.id.in_(select(SegmentMember.profile_id).where(
            SegmentMember.segment == bindparam("segment"))))
    if after:
        query = query.where(or_(Profile.updated_at > bindparam("at"),
                                and_(Profile.updated_at == bindparam("at"), Profile.id > bindparam("key"))))
    return query.order_by(Profile.updated_at, Profile.id).limit(bindparam("limit"))


def timeline_page(session: Session, profile_id: str, args: Mapping[str, Any]) -> Page:
    """Activities of a profile, newest first by ``(occurred_at, id)``, one keyset page."""
    query: Select = select(Activity).where(Activity.profile_id == profile_id)
    if args.get("type") is not None:
        query = query.where(Activity.type == args["type"])
    if args.get("source") is not None:
        query = query.where(Activity.source == args["source"])
    if args.get("cursor") is not None:
        at, key = decode_cursor(TIMELINE, args["cursor"], int)
        query = query.where(or_(Activity.occurred_at < at, and_(Activity.occurred_at == at, Activity.id < key)))
    limit = args["limit"]
    rows = list(session.scalars(query.order_by(Activity.occurred_at.desc(), Activity.id.desc())
                                .limit(limit + 1)))
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], encode_cursor(TIMELINE, last.occurred_at, last.id))


def identities_of(session: Session, profile_id: str) -> list[Identity]:
    """Every identifier a profile holds, by type then value."""
    return list(session.scalars(select(Identity).where(Identity.profile_id == profile_id)
                                .order_by(Identity.type, Identity.value)))


def profile_documents(session: Session, profiles: Sequence[Profile], provenance: bool = False) -> list[dict]:
    """The public JSON of these profiles, in their order, with one query for all of them."""
    ids = [p.id for p in profiles]
    if not ids:
        return []
    rows = {row.id: row for row in session.execute(documents_query(session).where(Profile.id.in_(ids)))}
    return [document(rows[pid], provenance) for pid in ids]


def profile_row(connection: Connection, profile_id: str) -> Row | None:
    """The row of one profile with its identities and traits (merged away or not), or None."""
    return connection.execute(_by_id_query(connection.dialect.name), {"id": profile_id}).first()


@functools.cache
def _by_id_query(dialect: str) -> Select:
    return _documents_query(dialect).where(Profile.id == bindparam("id"))


def documents_query(session: Session) -> Select:
    """SELECT profiles with their identities, traits and segments as JSON lists (see :func:`document`)."""
    return _documents_query(session.get_bind().dialect.name)


@functools.cache
def _documents_query(dialect: str) -> Select:
    if dialect == "postgresql":
        aggregate, array, as_json = func.json_agg, func.json_build_array, (lambda column: column)
    else:
        aggregate, array, as_json = func.json_group_array, func.json_array, func.json
    identities = (select(aggregate(array(Identity.type, Identity.value, Identity.source)))
                  .where(Identity.profile_id == Profile.id).scalar_subquery())
    traits = (select(aggregate(array(Trait.name, as_json(Trait.value), Trait.source, Trait.observed_at)))
              .where(Trait.profile_id == Profile.id).scalar_subquery())
    segments = (select(aggregate(SegmentMember.segment)).where(SegmentMember.profile_id == Profile.id)
                .scalar_subquery())
    return select(*Profile.__table__.c, type_coerce(identities, JSON).label("identity_list"),
                  type_coerce(traits, JSON).label("trait_list"), type_coerce(segments, JSON).label("segment_list"))


def document(row: Row, provenance: bool = False) -> dict:
    """The public JSON of a :func:`documents_query` row; traits as ``{value, source, observed_at}``
    with ``provenance``."""
    identities = sorted(row.identity_list or (), key=lambda i: (i[0], i[1]))
    traits = {}
    for name, value, source, observed_at in sorted(row.trait_list or (), key=lambda t: t[0]):
        traits[name] = {"value": value, "source": source, "observed_at": _iso(observed_at)} if provenance else value
    return _document(row, traits, [{"type": kind, "value": value, "source": source}
                                   for kind, value, source in identities])


def _document(profile: Row, traits: dict, identities: list[dict]) -> dict:
    churn = None
    if profile.churn_risk is not None:  # the store keeps the score only, not yet its factors
        churn = {"score": profile.churn_risk, "factors": []}
    return {
        "id": profile.id,
        "traits": traits,
        "identities": identities,
        "lifecycle_stage": profile.lifecycle_stage,
        "lead_score": profile.lead_score,
        "churn_risk": churn,
        "metrics": profile.metrics or {},
        "segments": sorted(profile.segment_list or ()),
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
    }


def _iso(value: str) -> str:
    """A time from a JSON aggregate (the database's text form) as ISO 8601 in UTC."""
    moment = datetime.fromisoformat(value)
    return (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)).isoformat()
