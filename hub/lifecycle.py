"""Lifecycle stages: an ordered funnel of rules; a profile is in the LAST stage whose rule holds.

``lifecycle: {preset: standard}`` or ``lifecycle: {stages: [{name, rule}, ...]}`` in hub.yaml
(no ``lifecycle`` key: no stages are computed). A stage rule reads only what the person did
(no ``within_days``, no ``stage``), so a profile's stage at any past moment follows from its
data alone: the stage history is replayed from the data's own times (see :func:`replay`) and
``hub rebuild`` gives back the same history whatever the batches.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from hub.models import Profile, StageStay
from hub.rules import Facts, Rule, RuleField, View

NAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$", error="1 to 32 letters, digits, '_', '-' or '.'")
PAID = ("order.placed", "payment.succeeded", "invoice.paid")
#: ``preset: standard``, in funnel order (see README, "Lifecycle and segments")
STANDARD = [
    {"name": "awareness", "rule": {"not": {"any": [{"identity": "email"}, {"identity": "phone"}]}}},
    {"name": "interest", "rule": {"any": [{"identity": "email"}, {"identity": "phone"}]}},
    {"name": "consideration", "rule": {"any": [
        {"activity": "form.submitted"}, {"activity": "checkout.started"}, {"activity": "email.subscribed"},
        {"trait": "email_consent", "eq": "subscribed"}, {"activity": "ticket.opened"}]}},
    {"name": "conversion", "rule": {"any": [{"activity": kind} for kind in PAID]}},
    {"name": "retention", "rule": {"any": [{"activity": kind, "min_count": 2} for kind in PAID]}},
    {"name": "advocacy", "rule": {"all": [
        {"any": [{"activity": kind, "min_count": 2} for kind in PAID]},
        {"activity": "satisfaction.rated", "where": {"score": "good"}}]}},
]


@dataclass(frozen=True)
class Stage:
    """One stage of the funnel."""

    name: str
    rule: Rule


@dataclass(frozen=True)
class Lifecycle:
    """The configured stages in funnel order (none: lifecycle stages are not computed)."""

    stages: tuple[Stage, ...] = ()

    @property
    def names(self) -> list[str]:
        """The stage names, in funnel order."""
        return [stage.name for stage in self.stages]

    def stage_of(self, view: View) -> str | None:
        """The last stage whose rule holds in ``view``, or None."""
        for stage in reversed(self.stages):
            if stage.rule.holds(view):
                return stage.name
        return None


@dataclass(frozen=True)
class Stay:
    """A time in one stage: ``exited_at`` None while the profile is still in it."""

    stage: str
    entered_at: datetime
    exited_at: datetime | None = None


class StageSchema(Schema):
    """``{name, rule}`` of one stage."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=NAME)
    rule = RuleField(timeless=True, required=True)


class LifecycleSchema(Schema):
    """``lifecycle:`` — ``{preset: standard}`` or ``{stages: [...]}``; loads a :class:`Lifecycle`."""

    class Meta:
        unknown = RAISE

    preset = fields.String(validate=validate.OneOf(("standard",)))
    stages = fields.List(fields.Nested(StageSchema), validate=validate.Length(min=1))

    @validates_schema
    def _preset_or_stages(self, data: dict, **_kwargs) -> None:
        if "preset" in data and "stages" in data:
            raise ValidationError("give either preset or stages, not both", "stages")
        names = [stage["name"] for stage in data.get("stages", ())]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValidationError({i: {"name": [f"{name} is already the name of stages[{names.index(name)}]"]}},
                                      "stages")

    @post_load
    def _compile(self, data: dict, **_kwargs) -> Lifecycle:
        stages = data.get("stages")
        if data.get("preset") == "standard":
            stages = StageSchema(many=True).load(STANDARD)
        return Lifecycle(tuple(Stage(s["name"], s["rule"]) for s in stages or ()))


def replay(lifecycle: Lifecycle, facts: Facts, stays: Sequence[Stay],
           start: datetime | None) -> tuple[list[Stay], list[tuple[datetime, str | None]]]:
    """A profile's stays after replaying its facts from ``start`` (None: from its first fact).

    Stays that began before ``start`` are kept (the data before it did not change); the stay
    open at ``start`` is reopened; then the stage is evaluated at each moment some fact became
    known, as of that moment. Returns the stays, oldest first, and the stage at each moment
    replayed.
    """
    kept = sorted((s for s in stays if start is not None and s.entered_at < start), key=lambda s: s.entered_at)
    current = None
    if kept and (kept[-1].exited_at is None or kept[-1].exited_at >= start):
        current = kept.pop()
    stages = []
    for moment in facts.moments(start):
        stage = lifecycle.stage_of(View(facts, moment, moment))
        stages.append((moment, stage))
        if stage == (current.stage if current else None):
            continue
        if current is not None:
            kept.append(Stay(current.stage, current.entered_at, moment))
        current = Stay(stage, moment) if stage is not None else None
    if current is not None:
        kept.append(Stay(current.stage, current.entered_at))
    return kept, stages


def current_stage(stays: Sequence[Stay]) -> str | None:
    """The stage of the open stay, if any."""
    return next((s.stage for s in stays if s.exited_at is None), None)


def stage_stats(session: Session, lifecycle: Lifecycle, since: datetime | None,
                until: datetime | None) -> list[dict[str, Any]]:
    """Per stage, in funnel order, over surviving profiles and stays in ``[since, until)``.

    ``count``: profiles in the stage now; ``entered`` / ``exited``: stays begun / ended in the
    window; ``converted``: profiles who entered the stage in the window and later entered a
    further stage; ``conversion``: that share of the profiles who entered (None if none did);
    ``median_seconds``: median length of the stays ended in the window (None if none did).
    """
    names = lifecycle.names
    live = Profile.merged_into.is_(None)
    counts = dict(session.execute(select(Profile.lifecycle_stage, func.count()).where(
        live, Profile.lifecycle_stage.in_(names)).group_by(Profile.lifecycle_stage)).all())
    stays = select(StageStay).join(Profile, Profile.id == StageStay.profile_id).where(live).subquery()

    def window(column):
        bounds = [column.is_not(None)]
        bounds += [column >= since] if since else []
        bounds += [column < until] if until else []
        return and_(*bounds)

    def per_stage(column) -> dict[str, int]:
        return dict(session.execute(select(stays.c.stage, func.count()).where(
            window(column)).group_by(stays.c.stage)).all())

    entered, exited = per_stage(stays.c.entered_at), per_stage(stays.c.exited_at)
    durations: dict[str, list[float]] = {}
    for stage, entered_at, exited_at in session.execute(select(
            stays.c.stage, stays.c.entered_at, stays.c.exited_at).where(window(stays.c.exited_at))):
        durations.setdefault(stage, []).append((exited_at - entered_at).total_seconds())
    later = aliased(StageStay)
    result = []
    for i, name in enumerate(names):
        base = select(func.count(stays.c.profile_id.distinct())).where(
            stays.c.stage == name, window(stays.c.entered_at))
        people = session.scalar(base)
        converted = session.scalar(base.where(exists().where(
            later.profile_id == stays.c.profile_id, later.stage.in_(names[i + 1:]),
            later.entered_at >= stays.c.entered_at))) if i + 1 < len(names) else 0
        result.append({
            "stage": name, "count": counts.get(name, 0), "entered": entered.get(name, 0),
            "exited": exited.get(name, 0), "converted": converted,
            "conversion": converted / people if people and i + 1 < len(names) else None,
            "median_seconds": statistics.median(durations[name]) if name in durations else None,
        })
    return result

