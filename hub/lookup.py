"""Finding a profile by any identifier and reading it whole."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.identity import IdentityRules
from hub.models import Activity, Identity, Profile


def parse_identifier(text: str) -> tuple[str, str]:
    """``TYPE:VALUE``, or a bare e-mail address or phone number."""
    kind, sep, value = text.partition(":")
    if sep and kind and not kind.startswith("+") and "@" not in kind:
        return kind, value
    return ("email", text) if "@" in text else ("phone", text)


def find_profile(session: Session, rules: IdentityRules, kind: str, value: str) -> Profile | None:
    """The surviving profile holding this identifier, or None."""
    normal = rules.normalize(kind, value)
    if normal is None:
        return None
    profile_id = session.scalar(select(Identity.profile_id).where(Identity.type == kind, Identity.value == normal))
    return surviving(session, profile_id) if profile_id else None


def surviving(session: Session, profile_id: str) -> Profile | None:
    """Follow merges from ``profile_id`` to the profile that holds the person now."""
    profile = session.get(Profile, profile_id)
    while profile is not None and profile.merged_into:
        profile = session.get(Profile, profile.merged_into)
    return profile


def profile_document(session: Session, profile: Profile, timeline: int = 20) -> dict:
    """The profile as the API serves it, plus its latest activities."""
    from hub.api.queries import profile_documents

    activities = session.scalars(select(Activity).where(Activity.profile_id == profile.id)
                                 .order_by(Activity.occurred_at.desc(), Activity.id.desc()).limit(timeline))
    return {**profile_documents(session, [profile])[0], "timeline": [
        {"type": a.type, "source": a.source, "source_id": a.source_id, "occurred_at": a.occurred_at.isoformat(),
         "properties": a.properties} for a in activities]}
