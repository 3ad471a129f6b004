"""Identity rules: normalising identifiers, junk values, per-type limits and priorities.

Deterministic and explainable: the same identifiers in the same order always resolve the
same way, and every decision that drops an identifier is reported as a conflict.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from hub.transforms import e164

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_BLOCKED = (
    "", "null", "none", "nil", "undefined", "0", "-1", "anonymous", "unknown", "n/a", "na",
    "test@test.com", "test@example.com", "email@example.com", "noreply@*", "no-reply@*",
    "user@example.com", "+10000000000", "+11111111111",
)
DEFAULT_LIMITS = {"email": 5, "phone": 5}
PLATFORM_ID_LIMIT = 1
OTHER_LIMIT = 50
#: ``<connector>_<object>_ref``: references to a person's objects (orders, captures): no limit
REFERENCE_LIMIT = 10 ** 9


@dataclass(frozen=True)
class IdentityRules:
    """Identity settings from ``identity:`` in ``hub.yaml``."""

    default_region: str = "US"
    blocked: tuple[str, ...] = DEFAULT_BLOCKED
    limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    priority: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, section: Mapping) -> "IdentityRules":
        """Build the rules; configured blocked values add to the defaults."""
        return cls(
            default_region=str(section.get("default_region") or "US").upper(),
            blocked=DEFAULT_BLOCKED + tuple(str(v).lower() for v in section.get("blocked") or ()),
            limits={**DEFAULT_LIMITS, **{k: int(v) for k, v in (section.get("limits") or {}).items()}},
            priority=tuple(section.get("priority") or ()),
        )

    def normalize(self, kind: str, value: str) -> str | None:
        """The canonical form of an identifier, or None for junk and unreadable values."""
        text = str(value).strip()
        if kind == "email":
            text = text.lower()
            if not EMAIL.match(text):
                return None
        elif kind == "phone":
            text = e164(text, None, {"default_region": self.default_region}) or ""
        if not text or self.is_blocked(text):
            return None
        return text[:320]

    def is_blocked(self, text: str) -> bool:
        """True for placeholders that would join unrelated people."""
        return _blocked_matcher(self.blocked)(text.lower())

    def limit(self, kind: str) -> int:
        """How many values of this type one profile may hold."""
        if kind in self.limits:
            return self.limits[kind]
        if kind.endswith("_ref"):
            return REFERENCE_LIMIT
        return PLATFORM_ID_LIMIT if is_platform_id(kind) else OTHER_LIMIT

    def rank(self, kind: str) -> tuple[int, str]:
        """Sort key: configured order first, then platform ids, e-mail, phone, the rest."""
        if kind in self.priority:
            return (self.priority.index(kind), kind)
        base = len(self.priority)
        if is_platform_id(kind):
            return (base, kind)
        return (base + {"email": 1, "phone": 2}.get(kind, 3), kind)

    def prepare(self, identifiers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Normalise, drop junk and duplicates, and sort by priority."""
        seen = {}
        for kind, value in identifiers:
            normal = self.normalize(kind, value)
            if normal is not None:
                seen.setdefault((kind, normal), None)
        return sorted(seen, key=lambda ident: (self.rank(ident[0]), ident[1]))


def is_platform_id(kind: str) -> bool:
    """``<connector>_<object>_id`` types, except anonymous visitor ids."""
    return kind.endswith("_id") and "anonymous" not in kind


def identifier_hash(kind: str, value: str) -> str:
    """The hash kept for an erased identifier (suppression)."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


@functools.lru_cache(maxsize=16)
def _blocked_matcher(patterns: tuple[str, ...]):
    """One compiled test for exact values and ``*`` patterns (``fnmatch`` syntax)."""
    exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
    wild = [p for p in patterns if p not in exact]
    regex = re.compile("|".join(fnmatch.translate(p) for p in wild)) if wild else None
    return lambda text: text in exact or bool(regex and regex.match(text))
