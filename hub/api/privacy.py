"""``/api/v1/profiles/{id}/export`` and ``DELETE /api/v1/profiles/{id}``: a person's data rights."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Response

from hub import privacy
from hub.api.auth import requires
from hub.api.errors import ApiBlueprint, not_found
from hub.api.profiles import MOVED, live_profile
from hub.api.schemas import ExportSchema, NoArgsSchema
from hub.runtime import current_hub

blueprint = ApiBlueprint("privacy", __name__, url_prefix="/profiles",
                         description="Export everything held on a person, or erase it")


@blueprint.route("/<profile_id>/export")
@requires("admin")
@blueprint.arguments(NoArgsSchema(), location="query")
@blueprint.response(200, ExportSchema)
@blueprint.alt_response(301, **MOVED)
@blueprint.alt_response(404, "NOT_FOUND")
@blueprint.alt_response(410, "GONE")
def export_profile(_args: Mapping[str, Any], profile_id: str) -> dict | Response:
    """Export a person's data

    The profile with the provenance of every trait, its identifiers, the whole timeline,
    the merges that formed it, and every raw inbox record about the person.
    """
    hub = current_hub()
    with hub.session() as session:
        profile = live_profile(session, profile_id)
        if isinstance(profile, Response):
            return profile
        return privacy.export(hub, session, privacy.find_person(session, profile.id))


@blueprint.route("/<profile_id>", methods=["DELETE"])
@requires("admin")
@blueprint.arguments(NoArgsSchema(), location="query")
@blueprint.response(204)
@blueprint.alt_response(404, "NOT_FOUND")
def erase_profile(_args: Mapping[str, Any], profile_id: str) -> None:
    """Erase a person

    Deletes the person's profile (and every profile merged into it), identifiers, traits,
    timeline and merges, and scrubs every raw inbox record about them. Hashes of their
    identifiers are kept so that later records carrying them create nothing. Emits
    `profile.erased` on the change feed. A merged-away id erases the person it belongs
    to. Idempotent: erasing an erased profile answers 204 again.
    """
    if not privacy.id_like(profile_id):
        raise not_found("profile")
    try:
        privacy.erase(current_hub(), profile_id)
    except privacy.UnknownProfile:
        raise not_found("profile") from None
