"""JSON in and out of the hub: orjson wherever it gives what the standard library gives, the
standard library for the rest (the drain spends much of its time reading bodies and writing rows).

orjson reads an integer beyond 64 bits as a float, and rejects NaN, a byte-order mark, UTF-16
and lone surrogates, which :mod:`json` accepts; it writes neither integers beyond 64 bits nor
keys that are not strings. Those documents take the standard library's path, so every document
reads to the same value either way (written text may differ in spacing, escapes and float form).
"""
from __future__ import annotations

import json
from typing import Any, Callable

import orjson

#: every digit made a zero, so that a run of digits is found by a plain substring search
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"0" * 9)
#: a run of digits as long as an integer orjson would read as a float (beyond 64 bits)
_LONG_DIGITS = b"0" * 19


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """``json.loads(data)``, faster; raises ``ValueError`` (``json.JSONDecodeError``) as it does."""
    if isinstance(data, memoryview):
        data = bytes(data)
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as compact JSON text; times (datetime, date) in ISO 8601, as ``isoformat()``
    writes them. ``default`` turns any other unknown type into one JSON can hold."""
    try:
        return orjson.dumps(value, default=default).decode()
    except TypeError:
        return json.dumps(value, default=lambda v: _standard(v, default), separators=(",", ":"))


def _standard(value: Any, default: Callable[[Any], Any] | None) -> Any:
    """What orjson writes natively that :mod:`json` does not: times; then ``default``."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if default is None:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return default(value)
