"""``/api/v1/stats/lifecycle``: the funnel of lifecycle stages."""
from __future__ import annotations

from typing import Any, Mapping

import marshmallow as ma
from marshmallow import fields

from hub.api.auth import requires
from hub.api.errors import ApiBlueprint
from hub.api.schemas import UTCDateTime
from hub.lifecycle import stage_stats
from hub.runtime import current_hub

blueprint = ApiBlueprint("stats", __name__, url_prefix="/stats", description="Aggregates over the profiles")


class LifecycleStatsArgsSchema(ma.Schema):
    """The window the entries and exits are counted in."""

    since = UTCDateTime(metadata={"description": "Count entries and exits at or after this ISO 8601 time "
                                                 "(UTC when no offset is given)"})
    until = UTCDateTime(metadata={"description": "Count entries and exits before this time"})


class StageStatsSchema(ma.Schema):
    """One stage of the funnel; only surviving profiles count (not merged-away ones)."""

    stage = fields.String(required=True)
    count = fields.Integer(required=True, metadata={"description": "Profiles in the stage now"})
    entered = fields.Integer(required=True, metadata={"description": "Entries into the stage in the window"})
    exited = fields.Integer(required=True, metadata={"description": "Exits from the stage in the window"})
    converted = fields.Integer(required=True, metadata={
        "description": "Profiles who entered the stage in the window and later entered the next stage or a "
                       "further one"})
    conversion = fields.Float(required=True, allow_none=True, metadata={
        "description": "`converted` over the profiles who entered the stage in the window; null for the last "
                       "stage or when nobody entered"})
    median_seconds = fields.Float(required=True, allow_none=True, metadata={
        "description": "Median time in the stage, over the stays that ended in the window; null if none did"})


class LifecycleStatsSchema(ma.Schema):
    """Every configured stage, in funnel order (one page)."""

    items = fields.List(fields.Nested(StageStatsSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={"description": "Always null"})


@blueprint.route("/lifecycle")
@requires("read")
@blueprint.arguments(LifecycleStatsArgsSchema(), location="query")
@blueprint.response(200, LifecycleStatsSchema)
def lifecycle_stats(args: Mapping[str, Any]) -> dict:
    """Lifecycle funnel

    Per stage: profiles in it now, entries and exits in `[since, until)` (all time without
    them; `until` at or before `since` is an empty window), conversion to the next stage
    and median time in the stage. Empty when no lifecycle is configured.
    """
    hub = current_hub()
    with hub.reader() as session:
        items = stage_stats(session, hub.config.lifecycle, args.get("since"), args.get("until"))
    return {"items": items, "next_cursor": None}
