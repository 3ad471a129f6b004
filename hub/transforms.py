"""The built-in named transforms of the mapping language; plugins add more via ``register_transforms``.

A transform is ``fn(value, arg, context) -> value``: ``arg`` is the resolved ``arg`` field of
the spec (e.g. the currency for ``minor_units``), ``context`` holds ``default_region``.
``None`` in gives ``None`` out; a value a transform cannot read raises ``ValueError``.
"""
from __future__ import annotations

import functools
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

import phonenumbers

from hub.hookspecs import hookimpl

Transform = Callable[[Any, Any, dict], Any]

#: ISO 4217 currencies without minor units, and with three decimals
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF ISK JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD IQD JOD KWD LYD OMR TND".split())


def lower(value: Any, arg: Any, context: dict) -> str:
    return str(value).lower()


def upper(value: Any, arg: Any, context: dict) -> str:
    return str(value).upper()


def strip(value: Any, arg: Any, context: dict) -> str:
    return str(value).strip()


def string(value: Any, arg: Any, context: dict) -> str:
    return str(value)


def integer(value: Any, arg: Any, context: dict) -> int:
    return int(value)


def boolean(value: Any, arg: Any, context: dict) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "on"):
        return True
    if text in ("0", "false", "no", "n", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def decimal(value: Any, arg: Any, context: dict) -> str:
    """An exact decimal amount as a string (``"12.50"``)."""
    try:
        return str(Decimal(str(value).strip()))
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None


def minor_units(value: Any, arg: Any, context: dict) -> str:
    """An integer amount in the currency's minor units (``arg`` = currency) as a decimal string."""
    currency = str(arg or "").upper()
    digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    amount = Decimal(int(value)).scaleb(-digits)
    return str(amount.quantize(Decimal(1).scaleb(-digits)))


def timestamp(value: Any, arg: Any, context: dict) -> datetime:
    """ISO 8601 text, ``YYYY-MM-DD HH:MM:SS`` (UTC) or Unix seconds, to an aware UTC datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        seconds = float(value)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        return datetime.fromtimestamp(seconds, timezone.utc)
    else:
        text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def e164(value: Any, arg: Any, context: dict) -> str | None:
    """A phone number in E.164, read with the configured default region; None if impossible."""
    return phone_e164(str(value), context.get("default_region") or "US")


@functools.lru_cache(maxsize=65536)
def phone_e164(text: str, region: str) -> str | None:
    """``text`` as an E.164 phone number read in ``region``, or None; remembered, as one person's
    number comes in many records, and is read again when its identifier is normalised."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


BUILT_IN: dict[str, Transform] = {
    "lower": lower, "upper": upper, "strip": strip, "str": string, "int": integer, "bool": boolean,
    "decimal": decimal, "minor_units": minor_units, "cents_to_decimal": minor_units,
    "timestamp": timestamp, "e164": e164,
}


@hookimpl
def register_transforms() -> dict[str, Transform]:
    return dict(BUILT_IN)
