"""The rule language of lifecycle stages and segments: declarative, checked at start, run in Python.

A rule is a mapping with exactly one condition key (no expressions, no templates):

- ``{metric: orders_count, gte: 2}``: a profile metric (``total_spent.EUR`` reads into a mapping),
  compared with one of ``eq``, ``ne``, ``gt``, ``gte``, ``lt``, ``lte``, ``in``, or tested with
  ``present: true|false``;
- ``{trait: email_consent, eq: subscribed}``, ``{trait: email, present: true}``: a trait, likewise
  (``address.city`` reads into a mapping);
- ``{identity: email}``: the profile holds an identifier of this type;
- ``{activity: checkout.started, min_count: 1, within_days: 7, where: {score: good}}``: at least
  ``min_count`` activities of this unified type on the timeline, in the last ``within_days`` days
  before the evaluation, whose properties equal those in ``where``;
- ``{stage: customer}``: the profile's lifecycle stage (segments only);
- ``{all: [rule, ...]}``, ``{any: [rule, ...]}``, ``{not: rule}``.

Numbers compare as decimals (a metric's ``"12.50"`` equals ``12.5``), two strings compare as
text, anything else only by equality. An absent value satisfies no comparison but ``ne``.

Rules run on a :class:`View`: one profile's :class:`Facts` (loaded for a whole batch at once)
as of a moment, so a rule can be asked what held at any past time of the profile's data.
"""
from __future__ import annotations

import bisect
import math
import operator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterator, Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from hub.profile_metrics import metrics_of
from hub.unified import ACTIVITY_TYPES

KINDS = ("metric", "trait", "identity", "activity", "stage", "all", "any", "not")
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
#: the metrics a rule may read (the keys of ``hub.profile_metrics.metrics_of``)
METRICS = tuple(metrics_of(()))
MISSING = object()
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


# -- the data a rule reads ------------------------------------------------------------

@dataclass
class Facts:
    """What rules may read of one profile, each piece with the time it became known."""

    #: when the profile was created (its first moment, even if nothing else is read)
    created_at: datetime | None = None
    #: identifier type -> when the profile first held one
    identities: dict[str, datetime] = field(default_factory=dict)
    #: trait name -> (value, observed_at)
    traits: dict[str, tuple[Any, datetime]] = field(default_factory=dict)
    #: activity type -> [(occurred_at, properties)], oldest first
    activities: dict[str, list[tuple[datetime, dict]]] = field(default_factory=dict)
    #: every activity (rows for ``metrics_of``), oldest first; loaded only when rules read metrics
    timeline: list = field(default_factory=list)
    _metrics: dict[int, dict] = field(default_factory=dict, repr=False)

    def moments(self, since: datetime | None = None) -> list[datetime]:
        """The distinct times at which something became known, oldest first (from ``since`` on)."""
        times = set(self.identities.values()) | ({self.created_at} if self.created_at else set())
        times.update(at for _, at in self.traits.values())
        times.update(at for rows in self.activities.values() for at, _ in rows)
        times.update(row.occurred_at for row in self.timeline)
        return sorted(t for t in times if since is None or t >= since)

    def metrics(self, at: datetime | None) -> dict:
        """The metrics of the timeline up to ``at`` (all of it for None)."""
        end = len(self.timeline) if at is None else bisect.bisect_right(
            self.timeline, at, key=lambda row: row.occurred_at)
        if end not in self._metrics:
            self._metrics[end] = metrics_of(self.timeline[:end])
        return self._metrics[end]


@dataclass(frozen=True)
class View:
    """A profile's facts as of ``at`` (None: everything), judged at ``now`` (for ``within_days``)."""

    facts: Facts
    at: datetime | None
    now: datetime
    stage: str | None = None

    def knows(self, moment: datetime) -> bool:
        """True if something known at ``moment`` is visible in this view."""
        return self.at is None or moment <= self.at


# -- compiled conditions --------------------------------------------------------------

class Rule:
    """A compiled condition: ``holds(view)``; composites list their parts in ``parts``."""

    parts: tuple["Rule", ...] = ()

    def holds(self, view: View) -> bool:  # pragma: no cover - every condition overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Compare(Rule):
    """A metric or trait compared with ``op`` (an operator or ``present``)."""

    source: str  # "metric" or "trait"
    path: tuple[str, ...]
    op: str
    value: Any

    def holds(self, view: View) -> bool:
        if self.source == "metric":
            actual = _dig(view.facts.metrics(view.at), self.path)
        else:
            name, *rest = self.path
            known = view.facts.traits.get(name)
            actual = _dig(known[0], rest) if known and view.knows(known[1]) else MISSING
        if self.op == "present":
            return (actual not in (MISSING, None, "")) == self.value
        return compare(self.op, actual, self.value)


@dataclass(frozen=True)
class HasIdentity(Rule):
    """The profile holds an identifier of this type."""

    type: str

    def holds(self, view: View) -> bool:
        since = view.facts.identities.get(self.type)
        return since is not None and view.knows(since)


@dataclass(frozen=True)
class Did(Rule):
    """At least ``min_count`` activities of a type (recent ones only with ``within_days``)."""

    type: str
    min_count: int = 1
    within_days: float | None = None
    where: tuple[tuple[str, Any], ...] = ()

    def holds(self, view: View) -> bool:
        after = view.now - timedelta(days=self.within_days) if self.within_days is not None else None
        count = 0
        for at, properties in view.facts.activities.get(self.type, ()):
            if not view.knows(at):
                break
            if (after is None or at >= after) and all(
                    compare("eq", (properties or {}).get(k, MISSING), v) for k, v in self.where):
                count += 1
                if count >= self.min_count:
                    return True
        return False


@dataclass(frozen=True)
class InStage(Rule):
    """The profile is in this lifecycle stage."""

    stage: str

    def holds(self, view: View) -> bool:
        return view.stage == self.stage


@dataclass(frozen=True)
class All(Rule):
    """Every part holds."""

    parts: tuple[Rule, ...]

    def holds(self, view: View) -> bool:
        return all(part.holds(view) for part in self.parts)


@dataclass(frozen=True)
class Any_(Rule):
    """At least one part holds."""

    parts: tuple[Rule, ...]

    def holds(self, view: View) -> bool:
        return any(part.holds(view) for part in self.parts)


@dataclass(frozen=True)
class Not(Rule):
    """The part does not hold."""

    part: Rule

    @property
    def parts(self) -> tuple[Rule, ...]:  # type: ignore[override]
        return (self.part,)

    def holds(self, view: View) -> bool:
        return not self.part.holds(view)


def compare(op: str, actual: Any, expected: Any) -> bool:
    """``actual op expected`` with the language's rules (decimals, absent values)."""
    if op == "ne":
        return not compare("eq", actual, expected)
    if actual is MISSING or actual is None:
        return False
    if op == "in":
        return any(compare("eq", actual, e) for e in expected)
    a, e = _number(actual), _number(expected)
    if a is not None and e is not None:
        actual, expected = a, e
    elif not (isinstance(actual, str) and isinstance(expected, str)):
        return op == "eq" and type(actual) is type(expected) and actual == expected
    return actual == expected if op == "eq" else _ORDER[op](actual, expected)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _dig(value: Any, path: tuple[str, ...] | list[str]) -> Any:
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return MISSING
        value = value[key]
    return value


def walk(rule: Rule, path: str = "") -> Iterator[tuple[str, Rule]]:
    """Every condition of ``rule`` with its path in the configuration (``any[1].not``)."""
    yield path, rule
    kind = {All: "all", Any_: "any", Not: "not"}.get(type(rule))
    for i, part in enumerate(rule.parts):
        sub = f"{kind}[{i}]" if kind != "not" else "not"
        yield from walk(part, f"{path}.{sub}" if path else sub)


@dataclass
class Needs:
    """What a set of rules reads, so a batch loads only that."""

    activity_types: set[str] = field(default_factory=set)
    identity_types: set[str] = field(default_factory=set)
    trait_names: set[str] = field(default_factory=set)
    metrics: bool = False
    #: activity properties are read (``where``)
    properties: bool = False
    #: the clock is read (``within_days``): the rules' verdicts change as time passes
    clock: bool = False

    def add(self, rule: Rule) -> "Needs":
        """Add what ``rule`` reads; return self."""
        for _, node in walk(rule):
            if isinstance(node, Did):
                self.activity_types.add(node.type)
                self.properties = self.properties or bool(node.where)
                self.clock = self.clock or node.within_days is not None
            elif isinstance(node, HasIdentity):
                self.identity_types.add(node.type)
            elif isinstance(node, Compare) and node.source == "trait":
                self.trait_names.add(node.path[0])
            elif isinstance(node, Compare):
                self.metrics = True
        return self


# -- configuration: marshmallow schemas of the conditions -------------------------------

def _scalar(value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("must be a finite number")
    if not isinstance(value, (str, int, float, bool)):
        raise ValidationError("must be a string, a number or true/false")


def _orderable(value: Any) -> None:
    if isinstance(value, bool) or _number(value) is None and not isinstance(value, str):
        raise ValidationError("must be a number or a string")


class _Condition(Schema):
    class Meta:
        unknown = RAISE


class _Comparison(_Condition):
    eq = fields.Raw(validate=_scalar)
    ne = fields.Raw(validate=_scalar)
    gt = fields.Raw(validate=_orderable)
    gte = fields.Raw(validate=_orderable)
    lt = fields.Raw(validate=_orderable)
    lte = fields.Raw(validate=_orderable)
    in_ = fields.List(fields.Raw(validate=_scalar), data_key="in", validate=validate.Length(min=1))
    present = fields.Boolean()

    @validates_schema
    def _one_operator(self, data: dict, **_kwargs) -> None:
        given = [op for op in (*OPERATORS, "present") if (op if op != "in" else "in_") in data]
        if not given:
            subject = "metric" if "metric" in data else "trait"
            raise ValidationError(f"needs one of {', '.join(OPERATORS)}, present", subject)
        if len(given) > 1:
            raise ValidationError(f"one operator per condition (also given: {', '.join(given[:-1])})", given[-1])


def _metric_path(value: str) -> None:
    if value.split(".")[0] not in METRICS:
        raise ValidationError(f"unknown metric (known: {', '.join(METRICS)})")


class _MetricCondition(_Comparison):
    metric = fields.String(required=True, validate=[validate.Length(min=1, max=128), _metric_path])


class _TraitCondition(_Comparison):
    trait = fields.String(required=True, validate=validate.Regexp(
        r"^[^.]{1,64}(\.[^.]+)*$", error="a trait name (1-64 characters), optionally .key.key"))


class _IdentityCondition(_Condition):
    identity = fields.String(required=True, validate=validate.Length(min=1, max=64))


class _ActivityCondition(_Condition):
    activity = fields.String(required=True, validate=validate.OneOf(
        ACTIVITY_TYPES, error="{input!r} is not an activity type of the unified vocabulary"))
    min_count = fields.Integer(load_default=1, validate=validate.Range(min=1))
    within_days = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    where = fields.Dict(keys=fields.String(), values=fields.Raw(validate=_scalar), load_default=dict)


class _StageCondition(_Condition):
    stage = fields.String(required=True, validate=validate.Length(min=1, max=32))


_SCHEMAS = {"metric": _MetricCondition, "trait": _TraitCondition, "identity": _IdentityCondition,
            "activity": _ActivityCondition, "stage": _StageCondition}


def parse_rule(value: Any, timeless: bool = False) -> Rule:
    """Compile a rule from its configuration; raise ``ValidationError`` with nested messages.

    ``timeless`` rules (lifecycle stages) may not read the clock (``within_days``) nor a stage.
    """
    if not isinstance(value, Mapping):
        raise ValidationError([f"must be a mapping with one of: {', '.join(KINDS)}"])
    kinds = [k for k in KINDS if k in value]
    if len(kinds) != 1:
        raise ValidationError([f"needs exactly one of: {', '.join(KINDS)}" + (
            f" (given: {', '.join(kinds)})" if kinds else "")])
    kind = kinds[0]
    extra = sorted(str(k) for k in value if k != kind)
    if kind in ("all", "any", "not") and extra:
        raise ValidationError({k: ["Unknown field."] for k in extra})
    if kind == "not":
        try:
            return Not(parse_rule(value["not"], timeless))
        except ValidationError as exc:
            raise ValidationError({"not": exc.messages}) from None
    if kind in ("all", "any"):
        items = value[kind]
        if not isinstance(items, list) or not items:
            raise ValidationError({kind: ["must be a non-empty list of rules"]})
        parts, errors = [], {}
        for i, item in enumerate(items):
            try:
                parts.append(parse_rule(item, timeless))
            except ValidationError as exc:
                errors[i] = exc.messages
        if errors:
            raise ValidationError({kind: errors})
        return (All if kind == "all" else Any_)(tuple(parts))
    data = _SCHEMAS[kind]().load(value)
    if timeless and kind == "stage":
        raise ValidationError({"stage": ["a lifecycle rule cannot depend on a stage"]})
    if timeless and "within_days" in data:
        raise ValidationError({"within_days": [
            "a lifecycle rule cannot depend on the clock (use it in a segment)"]})
    return _compile(kind, data)


def _compile(kind: str, data: dict) -> Rule:
    if kind in ("metric", "trait"):
        op = next(op for op in (*OPERATORS, "present") if (op if op != "in" else "in_") in data)
        value = data["in_" if op == "in" else op]
        return Compare(kind, tuple(data[kind].split(".")), op, tuple(value) if op == "in" else value)
    if kind == "identity":
        return HasIdentity(data["identity"])
    if kind == "activity":
        return Did(data["activity"], data["min_count"], data.get("within_days"),
                   tuple(sorted(data["where"].items())))
    return InStage(data["stage"])


class RuleField(fields.Field):
    """A marshmallow field that loads a rule into its compiled :class:`Rule`."""

    def __init__(self, timeless: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.timeless = timeless

    def _deserialize(self, value: Any, attr: str | None, data: Mapping | None, **kwargs) -> Rule:
        return parse_rule(value, self.timeless)
