"""Opaque keyset cursors: URL-safe base64 of the last row's sort key, tagged by list.

A cursor names a position in an order (not an offset), so rows changing between two
pages neither shift nor hide the rows still to come.
"""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone

from hub.api.errors import bad_request

PROFILES = "p"
TIMELINE = "t"
MALFORMED = "malformed cursor (pass next_cursor from the previous page)"


def encode_cursor(kind: str, at: datetime, key: str | int) -> str:
    """The cursor after the row sorted at ``(at, key)`` in the list ``kind``."""
    raw = json.dumps([kind, at.astimezone(timezone.utc).isoformat(), key], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, key_type: type) -> tuple[datetime, str | int]:
    """``(at, key)`` from a cursor of the list ``kind``; a 400 naming ``cursor`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, at_text, key = json.loads(raw)
        at = datetime.fromisoformat(at_text)
        if tag != kind or at.tzinfo is None or not _valid_key(key, key_type):
            raise ValueError(cursor)
        return at.astimezone(timezone.utc), key
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise bad_request("cursor", MALFORMED) from None


def _valid_key(key: object, key_type: type) -> bool:
    """A key the database can compare: a short string without NUL, or a 63-bit integer."""
    if type(key) is not key_type:
        return False
    if isinstance(key, str):
        return 0 < len(key) <= 64 and "\x00" not in key
    return 0 <= key < 2 ** 63
