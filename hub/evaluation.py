"""Computing lifecycle stages, segment membership and triggers of a set of profiles, set-based.

Runs right after a batch is written (``hub.pipeline``), after an unmerge, and for
``hub segments refresh`` (by hand, or from the sweeper every ``segments_refresh_minutes`` when
a rule reads the clock). For all the profiles at once it loads, in a few queries per 500
profiles, what the rules read (identities, traits, activities), the stage history, the
memberships and the trigger matches; replays each profile from the earliest fact the batch
brought (the history before it cannot have changed; a profile the batch brought nothing the
rules read is only judged again at the current time); and writes only the differences, with
their change-feed entries, under the feed lock. A merged-away profile's stay closes at the
merge, it leaves its segments and its trigger matches are dropped; the survivor is replayed
from its first fact.

A trigger is edge-triggered: it fires (``trigger.fired``) when an evaluation finds its rule
holding for a profile and ``trigger_matches`` has no row for it (the row is made then), and
forgets the match silently when the rule stops holding; so it fires once per start of a
match, as a segment is entered once. A match that begins and ends between two evaluations
(within one batch) does not fire.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Collection, Iterable, Mapping, Sequence

from sqlalchemy import Table, delete, func, null, select
from sqlalchemy.orm import Session

from hub import bulk
from hub.config import Config
from hub.lifecycle import Stay, current_stage, replay
from hub.models import (Activity, Change, Identity, Profile, SegmentMember, StageStay, Trait, TriggerMatch,
                        utcnow)
from hub.periodic import Every
from hub.profiles import BatchOutcome, feed_lock
from hub.rules import Facts, Needs
from hub.segments import Segment, membership
from hub.unified import UnifiedRecord

CHUNK = 500
#: the start of a replay when no fact is new: nothing is replayed, only the clock moved
NO_NEW_FACTS = datetime.max.replace(tzinfo=timezone.utc)
#: when this process last refreshed the rules that read the clock
REFRESHING = Every()


@dataclass(frozen=True, eq=False)
class Held:
    """A table of the profiles each named rule holds for, since when: segment members, trigger matches."""

    #: the configuration section of the rules (``segments``, ``triggers``)
    section: str
    table: Table
    #: the column naming the segment or trigger, and the one with the time its rule began to hold
    name: str
    since: str
    #: the change written when the rule begins to hold, and when it stops (None: none)
    entered: str
    left: str | None
    #: the profile's JSON lists them (``segments``)
    shown: bool

    def rules(self, config: Config) -> Mapping[str, Segment]:
        """The configured segments or triggers."""
        return getattr(config, self.section)


SEGMENTS = Held("segments", SegmentMember.__table__, "segment", "entered_at", "segment.entered", "segment.exited",
                shown=True)
TRIGGERS = Held("triggers", TriggerMatch.__table__, "trigger", "matched_at", "trigger.fired", None, shown=False)
HELD = (SEGMENTS, TRIGGERS)


@dataclass(frozen=True)
class Arrivals:
    """What a batch brought: its inbox rows and the earliest time one was observed."""

    inbox_ids: frozenset[int]
    since: datetime
    #: the earliest observed time of a record retiring identifiers (the facts lost leave no trace)
    retired_since: datetime | None = None


def enabled(config: Config) -> bool:
    """True when lifecycle stages, segments or triggers are configured."""
    return bool(config.lifecycle.stages or config.segments or config.triggers)


def needs(config: Config) -> Needs:
    """What the configured stage, segment and trigger rules read."""
    found = Needs()
    for rule in [s.rule for s in config.lifecycle.stages] + [
            s.rule for held in HELD for s in held.rules(config).values()]:
        found.add(rule)
    return found


def after_batch(hub, session: Session, records: Sequence[UnifiedRecord], outcome: BatchOutcome) -> None:
    """Evaluate the profiles a batch touched (the pipeline calls it right after writing the batch)."""
    if not enabled(hub.config) or not (outcome.touched or outcome.merges):
        return
    observed = {r.inbox_id: r.observed_at for r in records}
    retiring = [r.observed_at for r in records if r.retired]
    arrivals = Arrivals(frozenset(observed), min(observed.values()), min(retiring) if retiring else None)
    parent = {merged: survivor for survivor, merged, _, _ in outcome.merges}
    survivors = set()
    for merged in parent:
        survivor = merged
        while survivor in parent:
            survivor = parent[survivor]
        survivors.add(survivor)  # it holds older facts now: replayed whole
    merges = {merged: observed.get(inbox_id, utcnow()) for _, merged, _, inbox_id in outcome.merges}
    evaluate(session, hub.config, outcome.touched | survivors, utcnow(), arrivals=arrivals, full=survivors,
             merges=merges)


def evaluate(session: Session, config: Config, profiles: Iterable[str], now: datetime, *,
             arrivals: Arrivals | None = None, full: Collection[str] = (),
             merges: Mapping[str, datetime] | None = None, skip_locked: bool = False) -> int:
    """Recompute the stages and segments of ``profiles``; return the number of changes written.

    Each profile is replayed from its first fact if in ``full``, else from the earliest fact
    of the ``arrivals`` (without arrivals, or with none for it: only judged at ``now``).
    ``merges`` maps merged-away profiles to the time of their merge. With ``skip_locked``
    (PostgreSQL) profiles a running batch holds are left to that batch.
    """
    reads = needs(config)
    kinds = [held for held in HELD if held.rules(config)]
    writes = _Writes()
    for chunk in chunks(sorted(set(profiles))):
        query = select(Profile.id, Profile.lifecycle_stage, Profile.created_at).where(
            Profile.id.in_(chunk), Profile.merged_into.is_(None))
        if skip_locked and session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = {row.id: row for row in session.execute(query.order_by(Profile.id))}
        live = sorted(rows)
        facts, fresh = load_facts(session, live, reads, arrivals)
        stays, held = _load_state(session, live, kinds)
        for profile in live:
            facts[profile].created_at = created = rows[profile].created_at
            if arrivals is not None and created >= arrivals.since:  # new in this batch
                fresh[profile] = min(fresh.get(profile, created), created)
            start = None if profile in full else fresh.get(profile, NO_NEW_FACTS)
            _evaluate_one(config, profile, rows[profile].lifecycle_stage, facts[profile], stays[profile],
                          {kind: held[kind][profile] for kind in kinds}, start, now, writes)
    if merges:
        _leave(session, sorted(merges.items()), writes)
    return writes.flush(session, now)


def _evaluate_one(config: Config, profile: str, stored_stage: str | None, facts: Facts,
                  stays: list[tuple[int, Stay]], held: Mapping[Held, dict[str, datetime]],
                  start: datetime | None, now: datetime, writes: "_Writes") -> None:
    new_stays, stages = replay(config.lifecycle, facts, [s for _, s in stays], start)
    stage = current_stage(new_stays)
    stored = {(s.stage, s.entered_at): (row, s.exited_at) for row, s in stays}
    for stay in new_stays:
        row, exited_at = stored.pop((stay.stage, stay.entered_at), (None, None))
        if row is None:
            writes.insert_stays.append({"profile_id": profile, "stage": stay.stage, "entered_at": stay.entered_at,
                                        "exited_at": stay.exited_at})
        elif exited_at != stay.exited_at:
            writes.update_stays.append({"id": row, "exited_at": stay.exited_at})
    writes.delete_stays.extend(row for row, _ in stored.values())
    shown = stage != stored_stage  # the profile's JSON changed: list searches by update time see it again
    if shown:
        writes.change(profile, "profile.stage_changed", {"from": stored_stage, "to": stage})
    for kind, since_of in held.items():
        for name, rule in sorted(kind.rules(config).items()):
            since = since_of.get(name)
            began = membership(rule, facts, stages, stage, since, start, now)
            if began is not None and since is None:
                writes.enter(kind, name, profile, began)
            elif began is None and since is not None:
                writes.leave(kind, name, profile)
            elif began != since:  # a late fact moved the start
                writes.held[kind].update.append({kind.name: name, "profile_id": profile, kind.since: began})
            shown = shown or kind.shown and (began is None) != (since is None)
    if shown:
        writes.profiles.append({"id": profile, "lifecycle_stage": stage, "updated_at": now})


def _leave(session: Session, merges: list[tuple[str, datetime]], writes: "_Writes") -> None:
    """Merged-away profiles: close their open stay at the merge, leave every segment, drop every
    trigger match."""
    for chunk in chunks(merges):
        at = dict(chunk)
        for row, profile, entered_at in session.execute(select(StageStay.id, StageStay.profile_id,
                                                               StageStay.entered_at).where(
                StageStay.profile_id.in_(list(at)), StageStay.exited_at.is_(None))):
            writes.update_stays.append({"id": row, "exited_at": max(at[profile], entered_at)})
        writes.merged.extend({"id": profile, "lifecycle_stage": None} for profile in at)
        for kind in HELD:
            table = kind.table
            for name, profile in session.execute(select(table.c[kind.name], table.c.profile_id).where(
                    table.c.profile_id.in_(list(at))).order_by(table.c.profile_id, table.c[kind.name])):
                writes.leave(kind, name, profile)


def load_facts(session: Session, profiles: Sequence[str], needs: Needs,
               arrivals: Arrivals | None = None) -> tuple[dict[str, Facts], dict[str, datetime]]:
    """What the rules read of these profiles (three queries at most), and per profile the time
    of the earliest of those facts the ``arrivals`` brought."""
    facts = {profile: Facts() for profile in profiles}
    fresh: dict[str, datetime] = {}

    def arrived(profile: str, moment: datetime, inbox_id: int | None = None) -> None:
        if arrivals is not None and (inbox_id in arrivals.inbox_ids if inbox_id is not None
                                     else moment >= arrivals.since):
            fresh[profile] = min(fresh.get(profile, moment), moment)

    if not profiles:
        return facts, fresh
    if arrivals is not None and arrivals.retired_since is not None:
        fresh.update({profile: arrivals.retired_since for profile in profiles})
    if needs.identity_types:
        for profile, kind, first in session.execute(select(
                Identity.profile_id, Identity.type, func.min(Identity.first_seen_at)).where(
                Identity.profile_id.in_(profiles), Identity.type.in_(sorted(needs.identity_types)))
                .group_by(Identity.profile_id, Identity.type)):
            facts[profile].identities[kind] = first = _utc(first)
            arrived(profile, first)  # identities carry no inbox id: any seen first since the batch's start
    if needs.trait_names:
        for profile, name, value, observed_at, inbox_id in session.execute(select(
                Trait.profile_id, Trait.name, Trait.value, Trait.observed_at, Trait.inbox_id).where(
                Trait.profile_id.in_(profiles), Trait.name.in_(sorted(needs.trait_names)))):
            facts[profile].traits[name] = (value, observed_at)
            arrived(profile, observed_at, inbox_id or 0)
    if needs.activity_types or needs.metrics:
        read = needs.metrics or needs.properties  # properties are JSON to decode: only when read
        query = select(Activity.profile_id, Activity.type, Activity.source, Activity.source_id, Activity.occurred_at,
                       Activity.properties if read else null().label("properties"), Activity.inbox_id).where(
            Activity.profile_id.in_(profiles))
        if not needs.metrics:
            query = query.where(Activity.type.in_(sorted(needs.activity_types)))
        for row in session.execute(query.order_by(Activity.profile_id, Activity.occurred_at, Activity.id)):
            if needs.metrics:
                facts[row.profile_id].timeline.append(row)
            if row.type in needs.activity_types:
                facts[row.profile_id].activities.setdefault(row.type, []).append((row.occurred_at, row.properties))
            arrived(row.profile_id, row.occurred_at, row.inbox_id or 0)
    return facts, fresh


def _load_state(session: Session, profiles: Sequence[str], kinds: Sequence[Held]) -> tuple[dict, dict]:
    """The stays (with their row ids) of these profiles, and per kind (segments, triggers) and
    profile the names held with their times."""
    stays: dict[str, list[tuple[int, Stay]]] = {p: [] for p in profiles}
    held: dict[Held, dict[str, dict[str, datetime]]] = {kind: {p: {} for p in profiles} for kind in kinds}
    if profiles:
        history = StageStay.__table__
        for row, profile, stage, entered_at, exited_at in session.execute(select(
                history.c.id, history.c.profile_id, history.c.stage, history.c.entered_at, history.c.exited_at)
                .where(history.c.profile_id.in_(profiles))):
            stays[profile].append((row, Stay(stage, entered_at, exited_at)))
        for kind in kinds:
            table = kind.table
            for name, profile, since in session.execute(select(
                    table.c[kind.name], table.c.profile_id, table.c[kind.since])
                    .where(table.c.profile_id.in_(profiles))):
                held[kind][profile][name] = since
    return stays, held


@dataclass
class _Rows:
    """The rows of one :class:`Held` table to insert, update and delete (``(name, profile)``)."""

    insert: list[dict] = field(default_factory=list)
    update: list[dict] = field(default_factory=list)
    delete: list[tuple[str, str]] = field(default_factory=list)


class _Writes:
    """The differences found, written with a few statements at the end."""

    def __init__(self):
        self.insert_stays: list[dict] = []
        self.update_stays: list[dict] = []
        self.delete_stays: list[int] = []
        self.held = {kind: _Rows() for kind in HELD}
        #: surviving profiles whose stage or segments changed; merged-away ones (no stage any more)
        self.profiles: list[dict] = []
        self.merged: list[dict] = []
        self.changes: list[dict] = []

    def change(self, profile: str, kind: str, data: dict) -> None:
        """Queue a change-feed entry."""
        self.changes.append({"type": kind, "profile_id": profile, "data": data})

    def enter(self, kind: Held, name: str, profile: str, since: datetime) -> None:
        """The rule ``name`` began to hold for ``profile``: a segment is entered, a trigger fires."""
        self.held[kind].insert.append({kind.name: name, "profile_id": profile, kind.since: since})
        self.change(profile, kind.entered, {kind.name: name})

    def leave(self, kind: Held, name: str, profile: str) -> None:
        """The rule ``name`` no longer holds for ``profile`` (or the profile was merged away)."""
        self.held[kind].delete.append((name, profile))
        if kind.left:
            self.change(profile, kind.left, {kind.name: name})

    def flush(self, session: Session, now: datetime) -> int:
        """Write everything; return the number of changes."""
        connection = session.connection()
        stays, profiles = StageStay.__table__, Profile.__table__
        if self.delete_stays:
            connection.execute(delete(stays).where(stays.c.id.in_(self.delete_stays)))
        bulk.update(connection, stays, self.update_stays, keys=["id"], values=["exited_at"])
        bulk.insert(connection, stays, self.insert_stays)
        for kind, rows in self.held.items():
            table = kind.table
            leaving: dict[str, list[str]] = defaultdict(list)
            for name, profile in rows.delete:
                leaving[name].append(profile)
            for name, ids in sorted(leaving.items()):
                connection.execute(delete(table).where(table.c[kind.name] == name,
                                                       table.c.profile_id.in_(ids)))
            bulk.update(connection, table, rows.update, keys=[kind.name, "profile_id"], values=[kind.since])
            bulk.insert(connection, table, rows.insert)
        bulk.update(connection, profiles, self.profiles, keys=["id"], values=["lifecycle_stage", "updated_at"])
        bulk.update(connection, profiles, self.merged, keys=["id"], values=["lifecycle_stage"])
        if self.changes:
            feed_lock(session)
            bulk.insert(connection, Change.__table__, [{**c, "created_at": now} for c in self.changes])
        return len(self.changes)


def refresh(hub, full: bool = False, progress: Callable[[int], None] = lambda n: None) -> tuple[int, int]:
    """Re-evaluate every surviving profile, 500 per transaction; return (profiles, changes).

    Without ``full`` only the clock moves (``within_days`` windows); with it every history is
    replayed from the first fact (after the lifecycle or segment rules changed).
    """
    seen = changed = 0
    if not enabled(hub.config):
        return seen, changed
    after = ""
    while True:
        with hub.session.begin() as session:
            ids = session.scalars(select(Profile.id).where(Profile.merged_into.is_(None), Profile.id > after)
                                  .order_by(Profile.id).limit(CHUNK)).all()
            if not ids:
                return seen, changed
            changed += evaluate(session, hub.config, ids, utcnow(), full=set(ids) if full else (), skip_locked=True)
        after = ids[-1]
        seen += len(ids)
        progress(len(ids))


def refresh_if_due(hub) -> int:
    """:func:`refresh`, at most once every ``segments_refresh_minutes`` in this process (the sweeper
    calls it), and only when a segment or trigger rule reads the clock; return the changes written."""
    minutes = hub.config.segments_refresh_minutes
    if minutes is None or not needs(hub.config).clock or not REFRESHING.due(minutes * 60):
        return 0
    return refresh(hub)[1]


def chunks(items: Sequence, size: int = CHUNK) -> Iterable[list]:
    """``items`` in lists of at most ``size``."""
    for begin in range(0, len(items), size):
        yield list(items[begin:begin + size])



def _utc(moment: datetime) -> datetime:
    """An aggregate's time (SQLite gives it back as naive UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
