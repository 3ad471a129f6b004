"""Privacy: everything held on a person (export), and erasing it for good.

An erased person leaves no personal data behind: their profiles (the survivor and every
profile merged into it), identities, traits, activities, stage history, segment memberships,
trigger matches, merges and separations are
deleted, and every inbox record about them is scrubbed (body, headers and error emptied,
key replaced, status ``erased``). Hashed suppressions of their identifiers and profile ids
stay, so a later record carrying one of those identifiers creates nothing (and is
scrubbed in turn) and the old profile ids answer "erased" rather than "unknown".

The inbox records about a person are the ones their profile was derived from (the
provenance of traits, activities and merges) and any other record whose body mentions
one of their identifiers and that maps to one of them (or names their e-mail address).
Finding the latter reads the whole inbox: an erasure is rare, and must be complete.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Iterable

import phonenumbers
from sqlalchemy import String, cast, delete, literal, or_, select, union, update
from sqlalchemy.orm import Session

from hub.db import upsert_insert
from hub.identity import identifier_hash
from hub.lookup import surviving
from hub.models import (Activity, Change, Identity, InboxRecord, InboxState, Merge, Profile, SegmentMember, Separation,
                        StageStay, Suppression, Trait, TriggerMatch, utcnow)
from hub.profiles import feed_lock, lock_identifiers

#: inbox status of a scrubbed record: nothing left to process or rebuild from
ERASED = "erased"
#: the suppression kind that remembers an erased profile id
PROFILE = "profile"
SCAN_CHUNK = 1000
#: the inbox columns a scan reads (what mapping a record needs)
SCANNED = (InboxRecord.id, InboxRecord.connector, InboxRecord.topic, InboxRecord.key, InboxRecord.body,
           InboxRecord.received_at)
_NOT_DIGIT = bytes(b for b in range(256) if not chr(b).isdigit())

Ident = tuple[str, str]


class UnknownProfile(LookupError):
    """No profile has this id, and none with it was erased."""


@dataclass(frozen=True)
class Person:
    """A surviving profile, the profiles merged into it, and the identifiers they hold."""

    id: str
    profile_ids: tuple[str, ...]
    identifiers: frozenset[Ident]


def id_like(profile_id: str) -> bool:
    """True if ``profile_id`` could be a profile id (ids are UUID strings: 36 characters)."""
    return len(profile_id) <= 36 and "\x00" not in profile_id


def is_erased(session: Session, profile_id: str) -> bool:
    """True if ``profile_id`` belonged to a person who was erased."""
    return session.get(Suppression, identifier_hash(PROFILE, profile_id)) is not None


def find_person(session: Session, profile_id: str) -> Person | None:
    """The person ``profile_id`` belongs to now (following merges), or None if unknown."""
    profile = surviving(session, profile_id)
    if profile is None:
        return None
    ids, frontier = {profile.id}, [profile.id]
    while frontier:
        frontier = list(session.scalars(select(Profile.id).where(Profile.merged_into.in_(frontier))))
        ids.update(frontier)
    held = session.execute(select(Identity.type, Identity.value).where(Identity.profile_id.in_(ids)))
    return Person(profile.id, tuple(sorted(ids)), frozenset((kind, value) for kind, value in held))


def export(hub, session: Session, person: Person) -> dict:
    """Everything held on ``person``: profile with provenance, identifiers, timeline, merges, inbox."""
    from hub.api.queries import profile_documents

    inbox_ids = inbox_of(hub, session, person)
    records = session.execute(select(InboxRecord, InboxState.status)
                              .join_from(InboxRecord, InboxState, InboxState.inbox_id == InboxRecord.id)
                              .where(InboxRecord.id.in_(inbox_ids)).order_by(InboxRecord.id)).all()
    profile = session.get(Profile, person.id)
    identities = session.scalars(select(Identity).where(Identity.profile_id == person.id)
                                 .order_by(Identity.type, Identity.value))
    activities = session.scalars(select(Activity).where(Activity.profile_id == person.id)
                                 .order_by(Activity.occurred_at.desc(), Activity.id.desc()))
    merges = session.scalars(select(Merge).where(Merge.survivor_id.in_(person.profile_ids)).order_by(Merge.id))
    return {
        "profile": profile_documents(session, [profile], provenance=True)[0],
        "merged_ids": [p for p in person.profile_ids if p != person.id],
        "identities": [{"type": i.type, "value": i.value, "source": i.source, "first_seen_at": i.first_seen_at,
                        "last_seen_at": i.last_seen_at} for i in identities],
        "timeline": [{"type": a.type, "source": a.source, "source_id": a.source_id, "occurred_at": a.occurred_at,
                      "properties": a.properties or {}} for a in activities],
        "merges": [{"survivor_id": m.survivor_id, "merged_id": m.merged_id, "identifier_type": m.identifier_type,
                    "identifier_value": m.identifier_value, "inbox_id": m.inbox_id, "merged_at": m.created_at}
                   for m in merges],
        "inbox": [_record_document(record, status) for record, status in records],
    }


def erase(hub, profile_id: str) -> bool:
    """Erase the person ``profile_id`` belongs to; False if they already were (idempotent).

    Raises :class:`UnknownProfile` for an id no profile ever had. One transaction: the
    person's identifiers are locked first (as a drain batch locks them), so no batch can
    attach a record to the person while they are being erased.
    """
    with hub.session.begin() as session:
        person = _locked_person(session, profile_id)
        if person is None:
            if is_erased(session, profile_id):
                return False
            raise UnknownProfile(profile_id)
        records = inbox_of(hub, session, person)
        hashes = [identifier_hash(*ident) for ident in sorted(person.identifiers)]
        hashes += [identifier_hash(PROFILE, p) for p in person.profile_ids]
        now = utcnow()
        session.execute(upsert_insert(session.get_bind().dialect.name, Suppression.__table__)
                        .on_conflict_do_nothing(index_elements=["identifier_hash"]),
                        [{"identifier_hash": h, "created_at": now} for h in hashes])
        ids = person.profile_ids
        for model in (Activity, Trait, Identity, StageStay, SegmentMember, TriggerMatch):
            session.execute(delete(model).where(model.profile_id.in_(ids)))
        session.execute(delete(Merge).where(or_(Merge.survivor_id.in_(ids), Merge.merged_id.in_(ids))))
        session.execute(delete(Separation).where(or_(Separation.profile_a.in_(ids), Separation.profile_b.in_(ids))))
        session.execute(update(Profile).where(Profile.id.in_(ids)).values(merged_into=None))
        session.execute(delete(Profile).where(Profile.id.in_(ids)))
        scrub(session, records)
        feed_lock(session)
        session.add(Change(type="profile.erased", profile_id=person.id, created_at=now,
                           data={"merged_ids": [p for p in ids if p != person.id]}))
    return True


def scrub(session: Session, inbox_ids: Iterable[int]) -> None:
    """Empty these inbox records of anything personal and mark them ``erased``."""
    ids = sorted(set(inbox_ids))
    for start in range(0, len(ids), SCAN_CHUNK):
        chunk = ids[start:start + SCAN_CHUNK]
        session.execute(update(InboxRecord).where(InboxRecord.id.in_(chunk)).values(
            key=literal("erased:").concat(cast(InboxRecord.id, String)), body=b"", headers={}))
        session.execute(update(InboxState).where(InboxState.inbox_id.in_(chunk)).values(error=None, status=ERASED))


def inbox_of(hub, session: Session, person: Person) -> list[int]:
    """Ids of the inbox records about ``person`` (see the module docstring)."""
    from hub.pipeline import unify

    ids = person.profile_ids
    derived = union(select(Activity.inbox_id).where(Activity.profile_id.in_(ids)),
                    select(Trait.inbox_id).where(Trait.profile_id.in_(ids)),
                    select(Merge.inbox_id).where(or_(Merge.survivor_id.in_(ids), Merge.merged_id.in_(ids))))
    found = {i for i in session.scalars(derived) if i is not None}
    emails, texts, digits = _needles(person.identifiers)
    if not (emails or texts or digits):
        return sorted(found)
    after = 0
    while True:
        rows = session.execute(select(*SCANNED)
                               .join_from(InboxRecord, InboxState, InboxState.inbox_id == InboxRecord.id)
                               .where(InboxRecord.id > after, InboxState.status != ERASED)
                               .order_by(InboxRecord.id).limit(SCAN_CHUNK)).all()
        if not rows:
            return sorted(found)
        after = rows[-1].id
        for record in rows:
            if record.id in found:
                continue
            body = bytes(record.body).lower()
            if any(e in body for e in emails):
                found.add(record.id)
            elif any(t in body for t in texts) or (digits and any(d in body.translate(None, _NOT_DIGIT)
                                                                  for d in digits)):
                if _maps_to(hub, unify, record, person.identifiers):
                    found.add(record.id)


def _needles(identifiers: Iterable[Ident]) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """What to look for in raw bodies: e-mail addresses, other values, phone digits (lower-cased)."""
    emails, texts, digits = [], [], []
    for kind, value in identifiers:
        if kind == "email":
            emails.append(value.lower().encode())
        elif kind == "phone":
            try:
                digits.append(str(phonenumbers.parse(value).national_number).encode())
            except phonenumbers.NumberParseException:
                texts.append(value.lower().encode())
        elif len(value) >= 3:
            texts.append(value.lower().encode())
    return emails, texts, digits


def _maps_to(hub, unify, record, identifiers: frozenset[Ident]) -> bool:
    """True if the record, mapped, carries one of ``identifiers`` (False if it cannot be mapped)."""
    try:
        unified = unify(hub, record)
    except Exception:  # a record that cannot be mapped was never about anyone
        return False
    return unified is not None and bool(identifiers.intersection(hub.identity_rules.prepare(unified.identities)))


def _locked_person(session: Session, profile_id: str) -> Person | None:
    """The person, with every identifier's advisory lock held and the profiles locked."""
    locked: set[Ident] = set()
    while True:
        person = find_person(session, profile_id)
        if person is None or person.identifiers <= locked:
            break
        lock_identifiers(session, person.identifiers - locked)
        locked |= person.identifiers
    if person is not None and session.get_bind().dialect.name == "postgresql":
        session.execute(select(Profile.id).where(Profile.id.in_(person.profile_ids)).with_for_update())
        person = find_person(session, profile_id)
    return person


def _record_document(record: InboxRecord, status: str) -> dict:
    body = bytes(record.body)
    try:
        text, encoding = body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return {"id": record.id, "connector": record.connector, "kind": record.kind, "key": record.key,
            "topic": record.topic, "received_at": record.received_at, "status": status,
            "headers": record.headers or {}, "body": text, "body_encoding": encoding}


__all__ = ["ERASED", "Person", "UnknownProfile", "erase", "export", "find_person", "id_like", "inbox_of", "is_erased",
           "scrub"]
