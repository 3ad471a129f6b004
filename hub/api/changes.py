"""``/api/v1/changes``: the ordered change feed (profile created, updated, merged, ...)."""
from __future__ import annotations

from typing import Any, Mapping

import marshmallow as ma
from marshmallow import fields, validate
from sqlalchemy import select

from hub.api.auth import requires
from hub import feed
from hub.api.errors import ApiBlueprint, ApiError
from hub.api.schemas import DEFAULT_LIMIT, MAX_LIMIT
from hub.models import Change
from hub.runtime import current_hub

blueprint = ApiBlueprint("changes", __name__, url_prefix="/changes",
                         description="What changed, in the order it was committed")


class ChangeArgsSchema(ma.Schema):
    """Where to start reading and how much."""

    after = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2 ** 63 - 1), metadata={
        "description": "Read the changes after this one: `next_cursor` of the previous page, or the `id` "
                       "of the last change read; 0 (the default) reads from the oldest change kept"})
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT),
                           metadata={"description": f"Changes per page, 1 to {MAX_LIMIT}"})


class ChangeSchema(ma.Schema):
    """One change: its position in the feed, what happened, to whom, with its details."""

    id = fields.Integer(required=True)
    type = fields.String(required=True, metadata={
        "description": "profile.created, profile.updated, profile.merged, profile.erased, "
                       "profile.stage_changed (data `{from, to}`), segment.entered, segment.exited (data `{segment}`), "
                       "trigger.fired (data `{trigger}`)"})
    profile_id = fields.String(required=True, allow_none=True)
    data = fields.Dict(keys=fields.String(), required=True)
    created_at = fields.DateTime(required=True)


class ChangePageSchema(ma.Schema):
    """A page of the feed, oldest first."""

    items = fields.List(fields.Nested(ChangeSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={
        "description": "`after` for the next page; null when nothing more is committed yet"})


@blueprint.route("")
@requires("read")
@blueprint.arguments(ChangeArgsSchema(), location="query")
@blueprint.response(200, ChangePageSchema)
@blueprint.alt_response(410, "GONE")
def list_changes(args: Mapping[str, Any]) -> dict:
    """Read the change feed

    Ordered and gap-free: changes are numbered in commit order, so a reader that keeps
    asking for what comes `after` the last change it read misses nothing. Changes older
    than the retention are pruned: asking for the changes after one older than the last
    pruned answers 410 (`cursor_expired`), since some are gone.
    """
    with current_hub().reader() as session:
        rows = session.scalars(select(Change).where(Change.id > args["after"]).order_by(Change.id)
                               .limit(args["limit"] + 1)).all()
        pruned = feed.horizon(session)  # read after the rows: a prune meanwhile is seen
    if 0 < args["after"] < pruned:
        raise ApiError(410, "cursor_expired", f"the changes up to {pruned} were pruned (retention); "
                                              "read again from after=0 and resynchronise")
    more = len(rows) > args["limit"]
    rows = rows[:args["limit"]]
    items = [{"id": c.id, "type": c.type, "profile_id": c.profile_id, "data": c.data, "created_at": c.created_at}
             for c in rows]
    return {"items": items, "next_cursor": str(rows[-1].id) if more else None}
