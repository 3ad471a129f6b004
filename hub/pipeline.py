"""The processing pipeline, registered as a built-in plugin: parse, map, resolve, store."""
from __future__ import annotations

import logging
from typing import Sequence

from sqlalchemy import Row
from sqlalchemy.orm import Session

from hub import evaluation, privacy
from hub.hookspecs import hookimpl
from hub.mapping import Document
from hub.models import InboxRecord
from hub.profiles import BatchWriter
from hub.unified import UnifiedRecord, validate_record

log = logging.getLogger(__name__)


def unify(hub, record: Row | InboxRecord) -> UnifiedRecord | None:
    """The unified record one inbox record (a claimed row or the stored object) maps to (None if
    its topic is ignored)."""
    connector = hub.connectors.get(record.connector)
    mapping = hub.mappings.get(record.connector)
    if connector is None or mapping is None:
        return None
    data = connector.parse(record.body, record.topic)
    unified = mapping.map(Document(data, record.topic, record.received_at, record.id, record.key))
    return validate_record(unified) if unified is not None else None


@hookimpl
def process_batch(hub, session: Session, records: Sequence[Row]) -> None:
    unified = [u for u in (unify(hub, r) for r in records) if u is not None]
    if not unified:
        return
    outcome = BatchWriter(session, hub.identity_rules, hub.config.traits.get("priority", {})).apply(unified)
    evaluation.after_batch(hub, session, unified, outcome)
    if outcome.suppressed:  # about an erased person: keep nothing of it
        privacy.scrub(session, outcome.suppressed)
    for inbox_id, ident, reason in outcome.conflicts:
        log.info("inbox row %s: identifier type %s not used for matching (%s)", inbox_id, ident[0], reason)
