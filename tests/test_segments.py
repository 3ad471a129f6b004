"""Segments: entering and leaving with the change feed, time windows and refresh, the rule language."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import evaluation
from hub.cli import main
from hub.models import SegmentMember
from hub.rules import MISSING, Facts, View, compare, parse_rule
from tests.api.conftest import T0, Store, act, rec
from tests.test_config import load, problems_of
from tests.test_lifecycle import ANA, feed, hours, process

BEA = ("email", "bea@example.com")


def members(engine):
    """Every membership as (segment, profile, entered in hours after T0)."""
    with Session(engine) as session:
        return sorted((m.segment, m.profile_id, hours(m.entered_at)) for m in session.scalars(select(SegmentMember)))


def test_entering_and_leaving_a_segment_are_in_the_feed(make_app, db_engine):
    app = make_app(segments={"subscribers": {"rule": {"trait": "email_consent", "eq": "subscribed"},
                                             "description": "Agreed to marketing e-mail"}})
    process(app, rec("mailchimp", ANA, at=0, traits={"email_consent": "subscribed"}))
    ana = Store(db_engine).profile_of(*ANA)
    assert members(db_engine) == [("subscribers", ana, 0)]
    process(app, rec("mailchimp", ANA, at=1, traits={"first_name": "Ana"}))
    assert members(db_engine) == [("subscribers", ana, 0)]  # still in: nothing to say
    process(app, rec("mailchimp", ANA, at=2, traits={"email_consent": "unsubscribed"}))
    assert members(db_engine) == []
    process(app, rec("mailchimp", ANA, at=3, traits={"email_consent": "subscribed"}))
    assert members(db_engine) == [("subscribers", ana, 3)]
    assert feed(db_engine) == [("segment.entered", ana, {"segment": "subscribers"}),
                               ("segment.exited", ana, {"segment": "subscribers"}),
                               ("segment.entered", ana, {"segment": "subscribers"})]


def test_a_time_window_is_left_when_refreshed_after_it_passed(make_app, db_engine, monkeypatch):
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    monkeypatch.setattr(evaluation, "utcnow", lambda: now)
    app = make_app(segments={"cart_abandoners": {"all": [
        {"activity": "checkout.started", "within_days": 7},
        {"not": {"activity": "order.placed", "within_days": 7}}]}})
    hub = app.extensions["tributary"]
    started, bought = hours(now - timedelta(days=2)), hours(now - timedelta(days=1))
    process(app, rec("shopify", ANA, at=started, activities=[act("checkout.started", "c-1", started)]),
            rec("shopify", BEA, at=started, activities=[act("checkout.started", "c-2", started)]))
    store = Store(db_engine)
    ana, bea = store.profile_of(*ANA), store.profile_of(*BEA)
    assert members(db_engine) == sorted([("cart_abandoners", ana, started), ("cart_abandoners", bea, started)])
    process(app, rec("shopify", BEA, at=bought, activities=[act("order.placed", "o-1", bought)]))
    assert members(db_engine) == [("cart_abandoners", ana, started)]  # Bea bought
    monkeypatch.setattr(evaluation, "utcnow", lambda: now + timedelta(days=5))
    assert evaluation.refresh(hub) == (2, 0)  # Ana's checkout is 7 days old: still in
    monkeypatch.setattr(evaluation, "utcnow", lambda: now + timedelta(days=5, hours=1))
    assert evaluation.refresh(hub) == (2, 1)
    assert members(db_engine) == []
    entered = feed(db_engine)[:2]
    assert sorted(entered) == sorted([("segment.entered", ana, {"segment": "cart_abandoners"}),
                                      ("segment.entered", bea, {"segment": "cart_abandoners"})])
    assert feed(db_engine)[2:] == [("segment.exited", bea, {"segment": "cart_abandoners"}),
                                   ("segment.exited", ana, {"segment": "cart_abandoners"})]


def test_segments_on_stages_and_a_refresh_after_the_rules_changed(make_app, db_engine, database_url, tmp_path):
    app = make_app(lifecycle={"preset": "standard"}, segments={"buyers": {"stage": "conversion"}})
    process(app, rec("shopify", ANA, at=0), rec("shopify", BEA, at=0))
    process(app, rec("shopify", ANA, at=2, activities=[act("order.placed", "o-1", 2)]))
    process(app, rec("shopify", ANA, at=4, activities=[act("order.placed", "o-2", 4)]))
    store = Store(db_engine)
    ana = store.profile_of(*ANA)
    assert members(db_engine) == []  # Ana converted at 2, and was retained at 4
    assert feed(db_engine, ("segment.entered", "segment.exited")) == [
        ("segment.entered", ana, {"segment": "buyers"}), ("segment.exited", ana, {"segment": "buyers"})]
    config = tmp_path / "hub.yaml"
    config.write_text(yaml.safe_dump({"database_url": database_url, "lifecycle": {"preset": "standard"},
                                      "segments": {"buyers": {"any": [{"stage": "conversion"},
                                                                      {"stage": "retention"}]}}}))
    runner = CliRunner()
    full = runner.invoke(main, ["--config", str(config), "segments", "refresh", "--full"])
    assert (full.exit_code, full.output) == (0, "evaluated 2 profiles, 1 change\n")
    assert members(db_engine) == [("buyers", ana, 2)]  # replayed: a buyer since the first order
    clock_only = runner.invoke(main, ["--config", str(config), "segments", "refresh"])
    assert (clock_only.exit_code, clock_only.output) == (0, "evaluated 2 profiles, 0 changes\n")
    assert feed(db_engine, ("segment.entered", "segment.exited"))[2:] == [
        ("segment.entered", ana, {"segment": "buyers"})]


def test_a_refresh_without_segments_or_lifecycle_does_nothing(make_app):
    assert evaluation.refresh(make_app().extensions["tributary"]) == (0, 0)


# -- the rule language -------------------------------------------------------------------

def facts() -> Facts:
    at = T0
    return Facts(
        created_at=at,
        identities={"email": at},
        traits={"email_consent": ("subscribed", at), "address": ({"city": "Porto"}, at),
                "vip": (True, at), "score": ("7", at + timedelta(hours=5))},
        activities={"satisfaction.rated": [(at, {"score": "bad"}), (at + timedelta(hours=1), {"score": "good"})],
                    "order.placed": [(at + timedelta(hours=h), {}) for h in (1, 2, 3)]},
        timeline=[type("Row", (), {"type": "order.placed", "source": "shop", "source_id": f"o-{h}",
                                   "occurred_at": at + timedelta(hours=h),
                                   "properties": {"amount": "12.50", "currency": "EUR"}})() for h in (1, 2, 3)])


@pytest.mark.parametrize("rule, expected", [
    ({"metric": "orders_count", "eq": 3}, True),
    ({"metric": "total_spent.EUR", "eq": 37.5}, True),  # "37.50" is the decimal 37.5
    ({"metric": "total_spent.EUR", "gt": "37.49"}, True),
    ({"metric": "total_spent.USD", "lt": 1}, False),  # absent: no comparison holds
    ({"metric": "total_spent.USD", "ne": 1}, True),  # ... but ne
    ({"metric": "total_spent.USD", "present": False}, True),
    ({"metric": "currency", "in": ["USD", "EUR"]}, True),
    ({"trait": "email_consent", "eq": "subscribed"}, True),
    ({"trait": "address.city", "eq": "Porto"}, True),
    ({"trait": "vip", "eq": True}, True),
    ({"trait": "vip", "eq": 1}, False),  # true is not the number 1
    ({"trait": "score", "gte": 7}, True),
    ({"trait": "phone", "present": True}, False),
    ({"identity": "email"}, True),
    ({"identity": "phone"}, False),
    ({"activity": "order.placed", "min_count": 3}, True),
    ({"activity": "order.placed", "min_count": 4}, False),
    ({"activity": "satisfaction.rated", "where": {"score": "good"}}, True),
    ({"activity": "satisfaction.rated", "where": {"score": "great"}}, False),
    ({"activity": "order.placed", "within_days": 1}, False),  # judged 2 days after the last order
    ({"activity": "order.placed", "within_days": 2.5}, True),
    ({"all": [{"identity": "email"}, {"not": {"identity": "phone"}}]}, True),
    ({"any": [{"identity": "phone"}, {"stage": "interest"}]}, True),
])
def test_each_condition_on_all_the_facts(rule, expected):
    view = View(facts(), None, T0 + timedelta(days=2, hours=3), "interest")
    assert parse_rule(rule).holds(view) is expected


def test_a_view_as_of_a_moment_sees_only_what_was_known_then():
    early = View(facts(), T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    assert parse_rule({"activity": "order.placed", "min_count": 2}).holds(early) is False
    assert parse_rule({"metric": "total_spent.EUR", "eq": "12.50"}).holds(early) is True
    assert parse_rule({"trait": "score", "present": True}).holds(early) is False
    assert [hours(m) for m in facts().moments(T0 + timedelta(hours=2))] == [2, 3, 5]


def test_comparisons():
    assert compare("eq", "12.50", Decimal("12.5")) is True
    assert compare("lt", "abc", "abd") is True
    assert compare("gt", "abc", 1) is False
    assert compare("eq", MISSING, "x") is False
    assert compare("ne", MISSING, "x") is True
    assert compare("in", None, ["x"]) is False


def test_the_long_and_the_short_form_of_a_segment():
    config = load({"segments": {"vip": {"metric": "orders_count", "gte": 5},
                                "fans": {"rule": {"activity": "satisfaction.rated"}, "description": "Rated us"}}})
    assert (config.segments["vip"].description, config.segments["fans"].description) == (None, "Rated us")


def test_segment_configuration_errors_name_the_key_and_the_reason():
    assert problems_of({"lifecycle": {"preset": "standard"}, "segments": {
        "has space": {"identity": "email"},
        "a": {"metric": "orders_count", "gte": 2, "lt": 5},
        "b": {"rule": {"all": [{"stage": "customer"}, {"any": []}]}},
        "c": {"rule": {"not": {"trait": "", "eq": "x"}}, "colour": "red"},
        "d": {"orders_count": {"gte": 2}},
        "e": "vip",
        "f": {"activity": "order.placed", "min_count": 0, "within_days": -1, "where": {"tags": ["x"]}},
        "g": {"trait": "x", "in": []},
        "h": {"all": [{"identity": "email"}], "any": [{"identity": "phone"}]},
    }}) == {
        "segments.has space.key": "1 to 64 letters, digits, '_', '-' or '.'",
        "segments.a.lt": "one operator per condition (also given: gte)",
        "segments.b.rule.all[1].any": "must be a non-empty list of rules",
        "segments.c.colour": "Unknown field.",
        "segments.c.rule.not.trait": "a trait name (1-64 characters), optionally .key.key",
        "segments.d": "needs exactly one of: metric, trait, identity, activity, stage, all, any, not",
        "segments.e": "must be a mapping with one of: metric, trait, identity, activity, stage, all, any, not",
        "segments.f.min_count": "Must be greater than or equal to 1.",
        "segments.f.within_days": "Must be greater than 0.",
        "segments.f.where.tags": "must be a string, a number or true/false",
        "segments.g.in": "Shorter than minimum length 1.",
        "segments.h": "needs exactly one of: metric, trait, identity, activity, stage, all, any, not (given: all, any)",
    }


def test_a_stage_condition_must_name_a_configured_stage():
    assert problems_of({"lifecycle": {"preset": "standard"},
                        "segments": {"vip": {"rule": {"any": [{"stage": "customer"}, {"stage": "retention"}]}}}}) == {
        "segments.vip.rule.any[0].stage": "unknown stage customer (stages: awareness, interest, consideration, "
                                          "conversion, retention, advocacy)"}
    assert problems_of({"segments": {"vip": {"not": {"stage": "retention"}}}}) == {
        "segments.vip.not.stage": "no lifecycle stages are configured"}
