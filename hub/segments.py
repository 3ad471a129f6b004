"""Segments: named rules; a profile is a member while its segment's rule holds.

``segments: {NAME: RULE}`` or ``segments: {NAME: {rule: RULE, description: TEXT}}`` in hub.yaml.
Membership is kept in ``segment_members`` with the time the profile entered; entering and
leaving are written to the change feed (``segment.entered`` / ``segment.exited``). Rules with
``within_days`` change as time passes: ``hub segments refresh`` re-evaluates every profile.

Triggers (``triggers:``, the same two forms) are named rules too: one fires (``trigger.fired``)
each time a profile starts to meet its rule; ``trigger_matches`` holds who meets it now.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

import click
from marshmallow import RAISE, Schema, fields, validate

from hub.lifecycle import Lifecycle
from hub.rules import Facts, InStage, Rule, RuleField, View, parse_rule, walk

NAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", error="1 to 64 letters, digits, '_', '-' or '.'")


@dataclass(frozen=True)
class Segment:
    """A segment's rule, its description, and where the rule sits in its configuration."""

    rule: Rule
    description: str | None = None
    #: ``"rule"`` for ``{rule: ..., description: ...}``, ``""`` for the short ``NAME: RULE``
    rule_key: str = ""


#: a trigger is configured like a segment: ``NAME: RULE`` or ``NAME: {rule, description}``
Trigger = Segment


class _SegmentSchema(Schema):
    class Meta:
        unknown = RAISE

    rule = RuleField(required=True)
    description = fields.String(load_default=None, validate=validate.Length(max=500))


class SegmentField(fields.Field):
    """One entry of ``segments:``, loaded into a :class:`Segment`."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping | None, **kwargs) -> Segment:
        if isinstance(value, Mapping) and "rule" in value:
            loaded = _SegmentSchema().load(value)
            return Segment(loaded["rule"], loaded["description"], "rule")
        return Segment(parse_rule(value))


def unknown_stages(segments: Mapping[str, Segment], lifecycle: Lifecycle,
                   section: str = "segments") -> dict[str, str]:
    """Problems (config key -> reason) of ``stage`` conditions naming no configured stage
    (in the segments, or the triggers with ``section="triggers"``)."""
    problems = {}
    known = lifecycle.names
    for name, segment in segments.items():
        for path, node in walk(segment.rule, segment.rule_key):
            if isinstance(node, InStage) and node.stage not in known:
                key = ".".join(part for part in (f"{section}.{name}", path, "stage") if part)
                problems[key] = (f"unknown stage {node.stage} (stages: {', '.join(known)})" if known
                                 else "no lifecycle stages are configured")
    return problems


def membership(segment: Segment, facts: Facts, stages: Sequence[tuple[datetime, str | None]],
               stage_now: str | None, since: datetime | None, start: datetime | None,
               now: datetime) -> datetime | None:
    """When the profile's current time in the segment began, or None if it is not a member.

    ``stages`` are the moments replayed from ``start`` with the stage at each (see
    :func:`hub.lifecycle.replay`); ``since`` is the stored entry time (the profile was a member
    from then on if it is before ``start``). Membership now is judged at ``now`` on all facts;
    an entry no fact explains (a ``within_days`` window) is dated ``now``.
    """
    run = since if since is not None and start is not None and since < start else None
    for moment, stage in stages:
        holds = segment.rule.holds(View(facts, moment, moment, stage))
        run = (run or moment) if holds else None
    if not segment.rule.holds(View(facts, None, now, stage_now)):
        return None
    return run or now


def register_cli(main: click.Group) -> None:
    """Add ``hub segments refresh [--full]`` to the ``main`` command group."""

    @main.group("segments")
    def segments_group() -> None:
        """Segments and lifecycle stages computed from the profiles."""

    @segments_group.command("refresh")
    @click.option("--full", is_flag=True, help="Replay every profile's whole history (after the lifecycle "
                                               "or segment rules changed).")
    def refresh_command(full: bool) -> None:
        """Re-evaluate every profile's segments and triggers (time windows move) and lifecycle stage."""
        from tqdm import tqdm

        from hub.cli import load_app
        from hub.evaluation import refresh

        app = load_app()
        hub = app.extensions["tributary"]
        try:
            with app.app_context(), tqdm(unit="profiles", desc="refresh", disable=not sys.stderr.isatty()) as bar:
                seen, changed = refresh(hub, full=full, progress=bar.update)
        finally:
            hub.close()
        click.echo(f"evaluated {seen} profile{'s' if seen != 1 else ''}, {changed} change{'s' if changed != 1 else ''}")
