"""The profile store: resolve a batch of unified records to profiles and write it, set-based.

One call per drain batch: the identifiers of the whole batch are locked (PostgreSQL
advisory locks, sorted), their owners loaded in one query, every record resolved in
memory (attach, create, merge with the oldest surviving, or drop an identifier that
would break a limit), then profiles, merges, identities, traits, activities and metrics
are written with a handful of statements.
"""
from __future__ import annotations

import hashlib
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session

from hub import bulk
from hub.db import array_literal, one_of, pieces
from hub.identity import IdentityRules, identifier_hash
from hub.profile_metrics import (COUNTED, EMPTY as EMPTY_METRICS, recomputed, span_of, store_metrics, whole,
                                 widened)
from hub.models import Activity, Change, Identity, Merge, Profile, Separation, Suppression, Trait, utcnow
from hub.unified import UnifiedRecord

LOCK_BUCKETS = 1024

Ident = tuple[str, str]

# A batch reads a few thousand rows by key from tables of any size. Left to its cost model
# (random_page_cost 4: a probe costs four page reads), PostgreSQL hashes or filters the whole
# table while it holds fewer pages than about four per key: 300k records in, the holders lookup
# hashed all 91k identities (101 ms against 18 for the probes) and the profiles read filtered 35k
# rows (37 ms against 22). Each lookup below is a LATERAL subquery with a LIMIT, which the planner
# cannot flatten into a join: one index probe per key, whatever the statistics say.

#: the holders of a batch's identifiers, given as two arrays (types, values): one index probe each
HOLDERS = text("SELECT k.type, k.value, i.profile_id FROM unnest(CAST(:types AS varchar[]), "
               "CAST(:values AS varchar[])) AS k(type, value) CROSS JOIN LATERAL (SELECT profile_id "
               "FROM identities WHERE type = k.type AND value = k.value LIMIT 1) AS i")
#: profiles by id, each locked as its probe reaches it: in the order of the ids given (the caller
#: sorts them, so two batches lock shared profiles in the same order and cannot deadlock)
LOCKED_PROFILES = text("SELECT p.id, p.created_at, p.merged_into, p.metrics FROM unnest(CAST(:ids AS varchar[])) "
                       "AS k(id) CROSS JOIN LATERAL (SELECT id, created_at, merged_into, metrics FROM profiles "
                       "WHERE id = k.id LIMIT 1 FOR UPDATE) AS p").columns(
    Profile.id, Profile.created_at, Profile.merged_into, Profile.metrics)


class UnknownSubject(Exception):
    """A record names its person only through an activity not stored yet; retried later."""


@dataclass
class _Known:
    """What the batch knows of one profile."""

    created_at: datetime
    #: identifiers held, by type; None until read (only for profiles a record may add to or merge)
    counts: dict[str, int] | None = None
    metrics: Any = field(default_factory=lambda: EMPTY_METRICS)


@dataclass
class BatchOutcome:
    """What a batch changed, for logging, metrics and the change feed."""

    created: list[str] = field(default_factory=list)
    merges: list[tuple[str, str, Ident, int]] = field(default_factory=list)
    conflicts: list[tuple[int, Ident, str]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    suppressed: list[int] = field(default_factory=list)


class BatchWriter:
    """Resolves and writes one batch of records inside the caller's transaction."""

    def __init__(self, session: Session, rules: IdentityRules, trait_priority: Mapping[str, Sequence[str]]):
        self.session = session
        #: Core statements run on the session's connection: rows, no ORM bookkeeping
        self.connection = session.connection()
        self.postgres = self.connection.dialect.name == "postgresql"
        self.rules = rules
        self.trait_priority = trait_priority
        self.owner: dict[Ident, str] = {}
        self.known: dict[str, _Known] = {}
        self.parent: dict[str, str] = {}
        self.outcome = BatchOutcome()
        self.new_identities: dict[Ident, tuple[str, str, datetime]] = {}
        self.retired: list[tuple[Ident, str]] = []
        self.traits: dict[tuple[str, str], tuple] = {}
        self.activities: list[dict] = []
        self.separations: list[tuple[str, str]] = []
        self.changed_traits: list[tuple[str, str]] = []
        self.seen: dict[Ident, datetime] = {}

    def _in(self, column, values: Sequence):
        return one_of(self.connection.dialect.name, column, values)

    def _chunks(self, items: list) -> list[Sequence]:
        return pieces(self.connection.dialect.name, items)

    # -- resolution -----------------------------------------------------------------

    def apply(self, records: Sequence[UnifiedRecord]) -> BatchOutcome:
        """Resolve every record in order and write the result."""
        prepared = [(r, self.rules.prepare(r.identities), self.rules.prepare(r.retired)) for r in records]
        every = {ident for _, ids, old in prepared for ident in ids + old}
        lock_identifiers(self.session, every)
        suppressed = self._suppressed(every)
        self._load(every)
        self._load_counts(self._growing(prepared))
        known_activities = self._load_about([r for r, ids, _ in prepared if not ids and r.about])
        for record, ids, old in prepared:
            if suppressed.intersection(ids):
                self.outcome.suppressed.append(record.inbox_id)
                continue
            if ids:
                profile = self._resolve(record, ids)
            elif record.about:
                profile = self._about(record, known_activities)
            else:
                self.outcome.conflicts.append((record.inbox_id, ("", ""), "no identifier"))
                continue
            self._collect(record, profile, ids, old)
        self._write()
        return self.outcome

    def _load_about(self, records: list[UnifiedRecord]) -> dict[tuple[str, str, str], str]:
        """Owners of the activities that identifier-less records point at, by (source, type, id)."""
        wanted: dict[str, set[str]] = {}
        for record in records:
            for _, source_id in record.about:
                wanted.setdefault(record.source, set()).add(source_id)
        found: dict[tuple[str, str, str], str] = {}
        table = Activity.__table__
        for source, ids in wanted.items():
            for chunk in self._chunks(sorted(ids)):
                rows = self.connection.execute(select(table.c.type, table.c.source_id, table.c.profile_id)
                                               .where(table.c.source == source, self._in(table.c.source_id, chunk)))
                for kind, source_id, profile in rows:
                    found[(source, kind, source_id)] = profile
        self._load_profiles(set(found.values()) - set(self.known))
        return found

    def _about(self, record: UnifiedRecord, known: dict[tuple[str, str, str], str]) -> str:
        """The person an identifier-less record is about, through an earlier activity."""
        for kind, source_id in record.about:
            profile = known.get((record.source, kind, source_id))
            if profile is None:  # the activity may come earlier in this very batch
                profile = next((row["profile_id"] for row in self.activities if row["source"] == record.source
                                and row["type"] == kind and row["source_id"] == source_id), None)
            if profile is not None:
                return self._find(profile)
        raise UnknownSubject(f"no {record.about[0][0]} {record.about[0][1]} from {record.source} yet")

    def _find(self, profile: str) -> str:
        while profile in self.parent:
            profile = self.parent[profile]
        return profile

    def _resolve(self, record: UnifiedRecord, ids: list[Ident]) -> str:
        anchor: str | None = None
        pending: list[Ident] = []  # identifiers no profile holds yet
        for ident in ids:
            owner = self.owner.get(ident)
            owner = self._find(owner) if owner else None
            if owner is None:
                pending.append(ident)
            elif anchor is None:
                if self._fits(owner, pending):
                    anchor = owner
                else:
                    self.outcome.conflicts.append((record.inbox_id, ident, "limit"))
            elif owner != anchor:
                if self._separated(anchor, owner):
                    self.outcome.conflicts.append((record.inbox_id, ident, "separated"))
                elif self._fits(owner, self._counts(anchor), pending):
                    anchor = self._merge(anchor, owner, ident, record.inbox_id)
                else:
                    self.outcome.conflicts.append((record.inbox_id, ident, "limit"))
        if anchor is None:
            anchor = self._create(record, pending[0] if pending else ids[0])
        for ident in pending:
            if self._counts(anchor).get(ident[0], 0) < self.rules.limit(ident[0]):
                self._attach(anchor, ident, record)
            else:
                self.outcome.conflicts.append((record.inbox_id, ident, "limit"))
        return anchor

    def _separated(self, a: str, b: str) -> bool:
        """True if an unmerge split these two people (or profiles merged into them)."""
        return any({self._find(x), self._find(y)} == {a, b} for x, y in self.separations)

    def _counts(self, profile: str) -> dict[str, int]:
        if self.known[profile].counts is None:  # not foreseen by _growing: read it alone
            self._load_counts([profile])
        return self.known[profile].counts

    def _fits(self, profile: str, other: Mapping[str, int] | Iterable[Ident], extra: Iterable[Ident] = ()) -> bool:
        items = other.items() if isinstance(other, Mapping) else [(kind, 1) for kind, _ in other]
        added = list(items) + [(kind, 1) for kind, _ in extra]
        if not added:  # nothing added breaks no limit
            return True
        counts = dict(self._counts(profile))
        for kind, n in added:
            counts[kind] = counts.get(kind, 0) + n
        return all(n <= self.rules.limit(kind) for kind, n in counts.items())

    def _create(self, record: UnifiedRecord, ident: Ident) -> str:
        profile = profile_id(record.inbox_id, ident)
        self.known[profile] = _Known(created_at=record.observed_at, counts={})
        self.outcome.created.append(profile)
        return profile

    def _attach(self, profile: str, ident: Ident, record: UnifiedRecord) -> None:
        self.owner[ident] = profile
        self.new_identities[ident] = (profile, record.source, record.observed_at)
        counts = self._counts(profile)
        counts[ident[0]] = counts.get(ident[0], 0) + 1

    def _merge(self, a: str, b: str, ident: Ident, inbox_id: int) -> str:
        survivor, merged = sorted((a, b), key=lambda p: (self.known[p].created_at, p))
        self.parent[merged] = survivor
        for kind, n in self._counts(merged).items():
            self._counts(survivor)[kind] = self._counts(survivor).get(kind, 0) + n
        self.outcome.merges.append((survivor, merged, ident, inbox_id))
        return survivor

    def _collect(self, record: UnifiedRecord, profile: str, ids: list[Ident], retired: list[Ident]) -> None:
        self.outcome.touched.add(profile)
        for ident in ids:
            if ident not in self.new_identities and self.seen.get(ident, record.observed_at) <= record.observed_at:
                self.seen[ident] = record.observed_at
        for ident in retired:
            self.retired.append((ident, profile))
        for name, value in record.traits.items():
            key = self._trait_key(name, record.source, record.observed_at, record.inbox_id)
            current = self.traits.get((profile, name))
            if current is None or key > current[0]:
                self.traits[(profile, name)] = (key, value, record.source, record.observed_at, record.inbox_id)
        for activity in record.activities:
            self.activities.append({
                "profile_id": profile, "type": activity.type, "source": record.source,
                "source_id": activity.source_id, "occurred_at": activity.occurred_at,
                "properties": activity.properties, "inbox_id": record.inbox_id,
            })

    def _trait_key(self, name: str, source: str, observed_at: datetime, inbox_id: int) -> tuple:
        order = self.trait_priority.get(name) or ()
        rank = len(order) - order.index(source) if source in order else 0
        return (rank, observed_at, inbox_id)

    # -- reading ----------------------------------------------------------------------

    def _suppressed(self, idents: set[Ident]) -> set[Ident]:
        hashes = {identifier_hash(*ident): ident for ident in idents}
        found = set()
        for chunk in self._chunks(list(hashes)):
            found.update(self.connection.scalars(
                select(Suppression.identifier_hash).where(self._in(Suppression.identifier_hash, chunk))))
        return {hashes[h] for h in found}

    def _load(self, idents: set[Ident]) -> None:
        for kind, value, profile in self._holders(sorted(idents)):
            self.owner[(kind, value)] = profile
        owners = set(self.owner.values())
        table = Separation.__table__
        for chunk in self._chunks(sorted(owners)):
            rows = self.connection.execute(select(table.c.profile_a, table.c.profile_b).where(
                or_(self._in(table.c.profile_a, chunk), self._in(table.c.profile_b, chunk))))
            self.separations.extend((a, b) for a, b in rows)
        self._load_profiles(owners | {p for pair in self.separations for p in pair})

    def _holders(self, idents: list[Ident]) -> list[tuple[str, str, str]]:
        """(type, value, profile) of each of these identifiers some profile holds, read through
        the (type, value) index: on PostgreSQL in one statement, elsewhere one per type."""
        if self.postgres:
            return list(self.connection.execute(HOLDERS, {"types": array_literal(k for k, _ in idents),
                                                          "values": array_literal(v for _, v in idents)}))
        by_type: dict[str, list[str]] = {}
        for kind, value in idents:
            by_type.setdefault(kind, []).append(value)
        table, found = Identity.__table__, []
        for kind, values in by_type.items():
            for chunk in self._chunks(values):
                found.extend((kind, value, profile) for value, profile in self.connection.execute(
                    select(table.c.value, table.c.profile_id).where(table.c.type == kind,
                                                                    self._in(table.c.value, chunk))))
        return found

    def _load_profiles(self, wanted: set[str]) -> None:
        """Lock and read the owners; follow merges committed meanwhile to their survivors."""
        while wanted:
            if self.postgres:
                rows = self.connection.execute(LOCKED_PROFILES, {"ids": array_literal(sorted(wanted))})
            else:
                rows = self.connection.execute(select(Profile.id, Profile.created_at, Profile.merged_into,
                                                      Profile.metrics).where(self._in(Profile.id, sorted(wanted)))
                                               .order_by(Profile.id))
            following = set()
            for profile, created_at, merged_into, metrics in rows:
                self.known[profile] = _Known(created_at=created_at, metrics=metrics)
                if merged_into:
                    self.parent[profile] = merged_into
                    following.add(merged_into)
            wanted = following - set(self.known)

    def _growing(self, prepared: Sequence[tuple[UnifiedRecord, list[Ident], list[Ident]]]) -> set[str]:
        """The stored profiles a record may add an identifier to or merge: those sharing a record
        with an identifier nobody holds yet or with another profile. The limits are checked on
        them alone; a record whose identifiers all belong to one profile adds nothing to count."""
        growing = set()
        for _, ids, _ in prepared:
            owners = {self._find(self.owner[ident]) for ident in ids if ident in self.owner}
            if len(owners) > 1 or owners and any(ident not in self.owner for ident in ids):
                growing.update(owners)
        return growing

    def _load_counts(self, profiles: Iterable[str]) -> None:
        """Read how many identifiers of each type these profiles hold."""
        wanted = sorted(p for p in profiles if self.known[p].counts is None)
        for profile in wanted:
            self.known[profile].counts = {}
        for chunk in self._chunks(wanted):
            counts = select(Identity.profile_id, Identity.type, func.count()).where(
                self._in(Identity.profile_id, chunk)).group_by(Identity.profile_id, Identity.type)
            for profile, kind, n in self.connection.execute(counts):
                self.known[profile].counts[kind] = n

    # -- writing ----------------------------------------------------------------------

    def _write(self) -> None:
        session, connection, now = self.session, self.connection, utcnow()
        bulk.insert(connection, Profile.__table__, [
            {"id": p, "created_at": self.known[p].created_at, "updated_at": now, "metrics": EMPTY_METRICS}
            for p in self.outcome.created])
        self._write_merges(now)
        final = self._find
        bulk.insert(connection, Identity.__table__, [
            {"type": k, "value": v, "profile_id": final(p), "source": src, "first_seen_at": seen,
             "last_seen_at": seen} for (k, v), (p, src, seen) in self.new_identities.items()])
        bulk.update(connection, Identity.__table__, [
            {"type": k, "value": v, "last_seen_at": t} for (k, v), t in sorted(self.seen.items())],
            keys=("type", "value"), values=("last_seen_at",), newer="last_seen_at")
        for (kind, value), profile in self.retired:
            session.execute(delete(Identity).where(Identity.type == kind, Identity.value == value,
                                                   Identity.profile_id == final(profile)))
        self._write_traits()
        self._write_timelines(now)
        self.outcome.touched = {final(p) for p in self.outcome.touched}
        self._write_changes(now)

    def _write_timelines(self, now: datetime) -> None:
        """Insert the batch's activities and bring the metrics of the profiles they went to up to date.

        Only a profile given an order, payment or ticket (or a merge) has its metrics recomputed
        from its timeline; the others (page views, e-mail events) only see first and last seen
        stretched to the new activities' times, from the metrics loaded with the profile.
        """
        final, key = self._find, _activity_key
        rows: dict[tuple[str, str, str], dict] = {}
        for row in self.activities:  # the first of two copies of one activity is the one kept
            row["profile_id"] = final(row["profile_id"])
            rows.setdefault(key(row), row)
        written = bulk.insert(self.connection, Activity.__table__, list(rows.values()),
                              conflict=("source", "source_id", "type"), returning=("source", "source_id", "type"))
        recount = {final(survivor) for survivor, _, _, _ in self.outcome.merges}
        times: dict[str, list[datetime]] = {row["profile_id"]: [] for row in rows.values()}
        for source, source_id, kind in written:
            row = rows[(source, source_id, kind)]
            if kind in COUNTED:
                recount.add(row["profile_id"])
            times[row["profile_id"]].append(row["occurred_at"])
        metrics = {}
        for profile, moments in times.items():
            stretched = None if profile in recount else widened(self.known[profile].metrics, moments)
            if stretched is None:
                recount.add(profile)
            else:
                metrics[profile] = stretched
        metrics.update(recomputed(self.session, sorted(recount), self._spans(recount, times)))
        store_metrics(self.session, metrics, now)

    def _spans(self, profiles: set[str], times: Mapping[str, list[datetime]]) -> dict:
        """First and last seen of these profiles after the batch, from the metrics loaded with them and
        with the profiles merged into them, and the times of the activities written: for those whose
        metrics documents are all whole (the others are read from their timelines)."""
        members = {profile: [profile] for profile in profiles}
        for _, merged, _, _ in self.outcome.merges:
            members[self._find(merged)].append(merged)
        documents = {profile: [self.known[p].metrics for p in group] for profile, group in members.items()}
        return {profile: span_of(docs, times.get(profile, ())) for profile, docs in documents.items()
                if all(map(whole, docs))}

    def _write_changes(self, now: datetime) -> None:
        """Append this batch's changes to the feed, in commit order (see :func:`feed_lock`)."""
        final, changes = self._find, []
        for profile in self.outcome.created:
            changes.append({"type": "profile.created", "profile_id": profile, "data": {}})
        for survivor, merged, ident, inbox_id in self.outcome.merges:
            changes.append({"type": "profile.merged", "profile_id": final(survivor),
                            "data": {"survivor_id": final(survivor), "merged_id": merged,
                                     "identifier_type": ident[0]}})
        fields: dict[str, set[str]] = {}
        for profile, name in self.changed_traits:
            fields.setdefault(final(profile), set()).add(f"traits.{name}")
        for profile, _, _ in self.new_identities.values():
            fields.setdefault(final(profile), set()).add("identities")
        for row in self.activities:
            fields.setdefault(row["profile_id"], set()).update(("timeline", "metrics"))
        for profile, names in sorted(fields.items()):
            changes.append({"type": "profile.updated", "profile_id": profile, "data": {"fields": sorted(names)}})
        if changes:
            feed_lock(self.session)
            bulk.insert(self.connection, Change.__table__, [{**c, "created_at": now} for c in changes])

    def _write_merges(self, now: datetime) -> None:
        """Move everything of the merged-away profiles to their final survivors, set-based."""
        if not self.outcome.merges:
            return
        moved = {merged: self._find(merged) for _, merged, _, _ in sorted(self.outcome.merges, key=lambda m: m[1])}
        connection = self.connection
        held: dict[str, list] = {m: [] for m in moved}
        identities = Identity.__table__
        for chunk in self._chunks(sorted(moved)):
            for kind, value, profile in connection.execute(select(
                    identities.c.type, identities.c.value, identities.c.profile_id)
                    .where(self._in(identities.c.profile_id, chunk))):
                held[profile].append([kind, value])
        for (kind, value), (profile, _, _) in self.new_identities.items():
            if profile in held:
                held[profile].append([kind, value])
        for table in (Identity.__table__, Activity.__table__):
            bulk.move(connection, table, "profile_id", "profile_id", moved)
        traits = Trait.__table__
        for chunk in self._chunks(sorted(moved)):
            for trait in connection.execute(select(traits).where(self._in(traits.c.profile_id, chunk))):
                survivor = moved[trait.profile_id]
                key = self._trait_key(trait.name, trait.source, trait.observed_at, trait.inbox_id or 0)
                current = self.traits.get((survivor, trait.name))
                if current is None or key > current[0]:
                    self.traits[(survivor, trait.name)] = (key, trait.value, trait.source, trait.observed_at,
                                                           trait.inbox_id)
            connection.execute(traits.delete().where(self._in(traits.c.profile_id, chunk)))
        for column in ("id", "merged_into"):  # two indexed updates, not one OR scan
            bulk.move(connection, Profile.__table__, column, "merged_into", moved, updated_at=now)
        bulk.insert(connection, Merge.__table__, [
            {"survivor_id": survivor, "merged_id": merged, "identifier_type": ident[0],
             "identifier_value": ident[1], "inbox_id": inbox_id, "created_at": now,
             "moved": sorted(held[merged])}
            for survivor, merged, ident, inbox_id in self.outcome.merges])

    def _write_traits(self) -> None:
        """Upsert each profile's best new value of each trait; a stored value the new one does not
        outrank (see :meth:`_trait_key`, compared in SQL by :meth:`_outranks`) stays."""
        if not self.traits:
            return
        final = self._find
        best: dict[tuple[str, str], tuple] = {}
        for (profile, name), candidate in self.traits.items():
            key = (final(profile), name)
            if key not in best or candidate[0] > best[key][0]:
                best[key] = candidate
        rows = [{"profile_id": profile, "name": name, "value": value, "source": source,
                 "observed_at": observed_at, "inbox_id": inbox_id}
                for (profile, name), (_, value, source, observed_at, inbox_id) in best.items()]
        self.changed_traits = bulk.insert(self.connection, Trait.__table__, rows, conflict=("profile_id", "name"),
                                          update=("value", "source", "observed_at", "inbox_id"),
                                          returning=("profile_id", "name"), only_if=self._outranks())

    def _outranks(self) -> str:
        """SQL: the incoming trait (``excluded``) outranks the stored one, in :meth:`_trait_key`'s order."""
        def rank(row: str) -> str:
            whens = [f"WHEN {row}.name = {_quote(name)} AND {row}.source = {_quote(source)} THEN {len(order) - i}"
                     for name, order in sorted(self.trait_priority.items()) for i, source in enumerate(order)]
            return f"CASE {' '.join(whens)} ELSE 0 END" if whens else "0"
        return (f"({rank('excluded')}, excluded.observed_at, COALESCE(excluded.inbox_id, 0)) > "
                f"({rank('traits')}, traits.observed_at, COALESCE(traits.inbox_id, 0))")


#: the bits of a UUID holding its version (8: laid out as below) and its variant (RFC 9562)
_VERSION_8, _VARIANT = 0x8 << 76, 0b10 << 62
_RANDOM = (1 << 128) - 1 ^ (0xF << 76) ^ (0b11 << 62) ^ (((1 << 48) - 1) << 80)


def profile_id(inbox_id: int, ident: Ident) -> str:
    """The id of the profile that inbox record ``inbox_id`` creates for identifier ``ident``.

    A UUID (version 8, RFC 9562) whose first 48 bits are the inbox id and whose other bits come from
    a SHA-256 of the record and the identifier: the same for the same record, so a rebuild makes the
    same ids; and ordered as the records arrived, so the profiles a drain is busy with sit together
    at the end of every index that starts with a profile id (timelines, identities, traits) instead
    of all over it.
    """
    digest = int.from_bytes(hashlib.sha256(f"{inbox_id}:{ident[0]}:{ident[1]}".encode()).digest()[:16], "big")
    return str(uuid.UUID(int=(inbox_id % (1 << 48)) << 80 | digest & _RANDOM | _VERSION_8 | _VARIANT))


def lock_identifiers(session: Session, idents: Iterable[Ident]) -> None:
    """Hold, until commit, the advisory locks of these identifiers (hashed to buckets, sorted).

    Whoever resolves or erases a person takes them first, so two transactions touching
    the same person run one after the other (PostgreSQL; SQLite writers are serial anyway).
    """
    buckets = sorted({zlib.crc32(f"{k}:{v}".encode()) % LOCK_BUCKETS for k, v in idents})
    if session.get_bind().dialect.name != "postgresql" or not buckets:
        return
    session.execute(text("SELECT pg_advisory_xact_lock(b) FROM unnest(CAST(:b AS int[])) AS b ORDER BY b"),
                    {"b": array_literal(buckets)})


FEED_LOCK = 0x7472_6962  # "trib"


def feed_lock(session: Session) -> None:
    """Serialise change-feed writers until commit, so feed ids follow commit order (no gaps)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FEED_LOCK})


def _quote(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _activity_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """What makes an activity unique: its source, its id there and its type."""
    return row["source"], row["source_id"], row["type"]
