"""``hub profiles unmerge``: split a bad merge, and keep it split.

The merged-away profile gets back the identifiers it held when it was merged, the two
profiles are recorded as separated (the resolver never merges them again), and the
activities and traits of both are derived anew by replaying the inbox records behind them.
"""
from __future__ import annotations

from sqlalchemy import delete, select, tuple_, union, update

from hub import evaluation
from hub.models import Activity, Identity, InboxRecord, Merge, Profile, Separation, Trait, utcnow
from hub.lookup import surviving
from hub.pipeline import unify
from hub.profile_metrics import compute_metrics
from hub.profiles import BatchWriter


class UnmergeError(Exception):
    """The profile cannot be unmerged (it was never merged, or is unknown)."""


def unmerge(hub, merged_id: str) -> tuple[str, str]:
    """Split ``merged_id`` out of the profile it was merged into; return (survivor, restored)."""
    with hub.session.begin() as session:
        merge = session.scalar(select(Merge).where(Merge.merged_id == merged_id).order_by(Merge.id.desc()))
        profile = session.get(Profile, merged_id)
        if profile is None:
            raise UnmergeError(f"no profile {merged_id}")
        if merge is None or not profile.merged_into:
            raise UnmergeError(f"profile {merged_id} is not merged into another")
        survivor = surviving(session, merged_id).id
        moved = [tuple(pair) for pair in merge.moved or []]
        if moved:
            session.execute(update(Identity).where(tuple_(Identity.type, Identity.value).in_(moved),
                                                   Identity.profile_id == survivor)
                            .values(profile_id=merged_id))
        earlier = select(Merge.merged_id).where(Merge.survivor_id == merged_id)
        session.execute(update(Profile).where(Profile.id.in_(earlier)).values(merged_into=merged_id))
        session.execute(update(Profile).where(Profile.id == merged_id).values(merged_into=None, updated_at=utcnow()))
        session.add(Separation(profile_a=survivor, profile_b=merged_id))
        session.execute(delete(Merge).where(Merge.id == merge.id))
        both = (survivor, merged_id)
        sources = union(select(Activity.inbox_id).where(Activity.profile_id.in_(both)),
                        select(Trait.inbox_id).where(Trait.profile_id.in_(both)))
        inbox_ids = sorted(i for i in session.scalars(sources) if i is not None)
        session.execute(delete(Activity).where(Activity.profile_id.in_(both)))
        session.execute(delete(Trait).where(Trait.profile_id.in_(both)))
        records = session.scalars(select(InboxRecord).where(InboxRecord.id.in_(inbox_ids))
                                  .order_by(InboxRecord.id)).all()
        unified = [u for u in (unify(hub, r) for r in records) if u is not None]
        BatchWriter(session, hub.identity_rules, hub.config.traits.get("priority", {})).apply(unified)
        compute_metrics(session, list(both), utcnow())
        if evaluation.enabled(hub.config):  # both histories replayed from their first fact
            evaluation.evaluate(session, hub.config, both, utcnow(), full=both)
    return survivor, merged_id
