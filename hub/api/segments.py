"""``/api/v1/segments``: the configured segments and their members."""
from __future__ import annotations

from typing import Any, Mapping

import marshmallow as ma
from marshmallow import fields
from sqlalchemy import and_, func, or_, select

from hub.api.auth import requires
from hub.api.cursors import decode_cursor, encode_cursor
from hub.api.errors import ApiBlueprint, not_found
from hub.api.schemas import NoArgsSchema, PageArgsSchema
from hub.models import SegmentMember
from hub.runtime import current_hub

blueprint = ApiBlueprint("segments", __name__, url_prefix="/segments",
                         description="Named rules over profiles (`segments` in hub.yaml) and who meets them")
#: the cursor tag of member pages (see :mod:`hub.api.cursors`)
MEMBERS = "m"


def unknown_segment(configured: Mapping[str, Any]) -> str:
    """Why a segment name is refused, listing the configured ones."""
    if not configured:
        return "no segments are configured"
    return f"unknown segment (configured: {', '.join(sorted(configured))})"


class SegmentSchema(ma.Schema):
    """One configured segment with its current number of members."""

    name = fields.String(required=True)
    description = fields.String(required=True, allow_none=True)
    members = fields.Integer(required=True, metadata={"description": "Profiles in the segment now"})


class SegmentPageSchema(ma.Schema):
    """Every configured segment, by name (one page: they are few)."""

    items = fields.List(fields.Nested(SegmentSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={"description": "Always null"})


class MemberSchema(ma.Schema):
    """A profile in the segment and when it entered."""

    profile_id = fields.String(required=True)
    entered_at = fields.DateTime(required=True, metadata={
        "description": "When the profile's facts first met the rule (for a time window met by the clock "
                       "alone, when that was noticed)"})


class MemberPageSchema(ma.Schema):
    """A page of members, by entry time then profile id."""

    items = fields.List(fields.Nested(MemberSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True,
                                metadata={"description": "Cursor of the next page; null on the last page"})


@blueprint.route("")
@requires("read")
@blueprint.arguments(NoArgsSchema(), location="query")
@blueprint.response(200, SegmentPageSchema)
def list_segments(_args: Mapping[str, Any]) -> dict:
    """List the segments

    Every segment of the configuration with its description and how many profiles are in
    it now.
    """
    hub = current_hub()
    with hub.reader() as session:
        counts = dict(session.execute(select(SegmentMember.segment, func.count())
                                      .group_by(SegmentMember.segment)).all())
    items = [{"name": name, "description": segment.description, "members": counts.get(name, 0)}
             for name, segment in sorted(hub.config.segments.items())]
    return {"items": items, "next_cursor": None}


@blueprint.route("/<name>/members")
@requires("read")
@blueprint.arguments(PageArgsSchema(), location="query")
@blueprint.response(200, MemberPageSchema)
@blueprint.alt_response(404, "NOT_FOUND")
def list_members(args: Mapping[str, Any], name: str) -> dict:
    """List a segment's members

    Profiles in the segment now, oldest entry first, paged with a keyset cursor. The full
    profiles are at `GET /profiles?segment=NAME`.
    """
    hub = current_hub()
    if name not in hub.config.segments:
        raise not_found("segment")
    query = select(SegmentMember.profile_id, SegmentMember.entered_at).where(SegmentMember.segment == name)
    if args.get("cursor") is not None:
        at, key = decode_cursor(MEMBERS, args["cursor"], str)
        query = query.where(or_(SegmentMember.entered_at > at,
                                and_(SegmentMember.entered_at == at, SegmentMember.profile_id > key)))
    limit = args["limit"]
    with hub.reader() as session:
        rows = session.execute(query.order_by(SegmentMember.entered_at, SegmentMember.profile_id)
                               .limit(limit + 1)).all()
    items = [{"profile_id": profile, "entered_at": at} for profile, at in rows[:limit]]
    more = len(rows) > limit
    return {"items": items, "next_cursor": encode_cursor(MEMBERS, rows[limit - 1].entered_at,
                                                         rows[limit - 1].profile_id) if more else None}
