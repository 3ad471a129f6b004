"""``/api/v1/profiles``: search, read (with provenance), timeline and identities of a person."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Response, request, url_for
from sqlalchemy.orm import Session

from hub import privacy
from hub.api import queries
from hub.api.auth import requires
from hub.api.errors import ApiError, ApiBlueprint, bad_request, not_found
from hub.api.schemas import (
    IdentityPageSchema,
    NoArgsSchema,
    ProfileArgsSchema,
    ProfileListArgsSchema,
    ProfilePageSchema,
    ProfileSchema,
    TimelineArgsSchema,
    TimelinePageSchema,
)
from hub.api.segments import unknown_segment
from hub.models import Profile
from hub.runtime import current_hub

blueprint = ApiBlueprint("profiles", __name__, url_prefix="/profiles",
                         description="One unified profile per real person")

MOVED = {"description": "The profile was merged into another; `Location` names the surviving one",
         "headers": {"Location": {"description": "Path of the same resource on the surviving profile",
                                  "schema": {"type": "string"}}}}


@blueprint.route("")
@requires("read")
@blueprint.arguments(ProfileListArgsSchema(), location="query")
@blueprint.response(200, ProfilePageSchema)
def list_profiles(args: Mapping[str, Any]) -> dict:
    """Search surviving profiles

    Filters combine (all must match). Ordered by `(updated_at, id)` and paged with a
    keyset cursor, so a sync that keeps calling with `next_cursor` sees every change.
    """
    hub = current_hub()
    if "segment" in args and args["segment"] not in hub.config.segments:  # ignoring it would answer everyone
        raise bad_request("segment", unknown_segment(hub.config.segments))
    with hub.read_engine.connect() as connection:  # Core, not a Session: the hottest read
        page = queries.profile_page(connection, hub.identity_rules, args)
    return {"items": [queries.document(row) for row in page.rows], "next_cursor": page.next_cursor}


@blueprint.route("/<profile_id>")
@requires("read")
@blueprint.arguments(ProfileArgsSchema(), location="query")
@blueprint.response(200, ProfileSchema)
@blueprint.alt_response(301, **MOVED)
@blueprint.alt_response(404, "NOT_FOUND")
@blueprint.alt_response(410, "GONE")
def get_profile(args: Mapping[str, Any], profile_id: str) -> dict | Response:
    """Read one profile

    A merged-away id answers 301 with the surviving profile in `Location`.
    """
    with current_hub().read_engine.connect() as connection:  # Core, not a Session: the hottest read
        row = queries.profile_row(connection, profile_id) if privacy.id_like(profile_id) else None
        if row is None or row.merged_into is not None:
            with Session(connection) as session:
                return live_profile(session, profile_id)  # the 301, 404 or 410
        return queries.document(row, provenance=args["provenance"])


@blueprint.route("/<profile_id>/timeline")
@requires("read")
@blueprint.arguments(TimelineArgsSchema(), location="query")
@blueprint.response(200, TimelinePageSchema)
@blueprint.alt_response(301, **MOVED)
@blueprint.alt_response(404, "NOT_FOUND")
@blueprint.alt_response(410, "GONE")
def get_timeline(args: Mapping[str, Any], profile_id: str) -> dict | Response:
    """Read a profile's timeline

    Activities newest first (`occurred_at`, then arrival), filtered by unified `type`
    and by `source` connector, paged with a keyset cursor.
    """
    with current_hub().reader() as session:
        profile = live_profile(session, profile_id)
        if isinstance(profile, Response):
            return profile
        page = queries.timeline_page(session, profile.id, args)
    items = [{"type": a.type, "source": a.source, "source_id": a.source_id, "occurred_at": a.occurred_at,
              "properties": a.properties or {}} for a in page.rows]
    return {"items": items, "next_cursor": page.next_cursor}


@blueprint.route("/<profile_id>/identities")
@requires("read")
@blueprint.arguments(NoArgsSchema(), location="query")
@blueprint.response(200, IdentityPageSchema)
@blueprint.alt_response(301, **MOVED)
@blueprint.alt_response(404, "NOT_FOUND")
@blueprint.alt_response(410, "GONE")
def get_identities(_args: Mapping[str, Any], profile_id: str) -> dict | Response:
    """List a profile's identifiers

    Every identifier the profile holds with its source and when it was first and
    last seen; a profile holds few, so this list has a single page.
    """
    with current_hub().reader() as session:
        profile = live_profile(session, profile_id)
        if isinstance(profile, Response):
            return profile
        items = [{"type": i.type, "value": i.value, "source": i.source, "first_seen_at": i.first_seen_at,
                  "last_seen_at": i.last_seen_at} for i in queries.identities_of(session, profile.id)]
    return {"items": items, "next_cursor": None}


def live_profile(session: Session, profile_id: str) -> Profile | Response:
    """The profile if it survives; a 301 to the survivor's same resource if merged away; 410 if
    erased; else 404."""
    if not privacy.id_like(profile_id):
        raise not_found("profile")
    profile = session.get(Profile, profile_id)
    if profile is None:
        if privacy.is_erased(session, profile_id):
            raise ApiError(410, "gone", "profile erased")
        raise not_found("profile")
    if profile.merged_into is None:
        return profile
    seen = {profile.id}
    while profile.merged_into is not None and profile.merged_into not in seen:
        seen.add(profile.merged_into)
        profile = session.get(Profile, profile.merged_into)
        if profile is None:
            raise not_found("profile")
    location = url_for(request.endpoint, profile_id=profile.id)
    if request.query_string:
        location += "?" + request.query_string.decode("latin-1")
    return Response(status=301, headers={"Location": location})
