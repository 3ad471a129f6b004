"""Triggers: edge-triggered `trigger.fired` changes through the real pipeline, time windows moved by the
periodic refresh in the sweeper, merges, erasure, rebuild, configuration, outbound delivery."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from itertools import count

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hub import evaluation, feed as change_feed, jobs, outbound, periodic
from hub.drain import drain
from hub.models import Change, SegmentMember, TriggerMatch
from hub.privacy import erase
from hub.rebuild import rebuild
from hub.unmerge import unmerge
from hub.unified import UnifiedRecord
from tests.api.conftest import T0, Store, act
from tests.test_config import load, problems_of
from tests.test_outbound import SECRET as OUTBOUND_SECRET, WEBSITE, Receiver, verified
from tests.test_website import send

MORNING = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
_webhooks = count(1)
LAPSED = {"rule": {"all": [{"activity": "page.viewed"}, {"not": {"activity": "page.viewed", "within_days": 30}}]},
          "description": "Visited, but not in the last 30 days"}


@pytest.fixture
def start(make_app):
    """An app with the website source and these settings; the test runs every job itself."""

    def factory(**settings):
        app = make_app(connectors=WEBSITE, **settings)
        app.extensions["tributary"].queue.signal = lambda job, lease: False
        return app

    return factory


def post(app, *events: dict) -> None:
    """Website events, signed and posted as one webhook, then drained through the real pipeline."""
    assert send(app.test_client(), {"events": list(events)}, msg_id=f"msg_{next(_webhooks)}").status_code == 202
    with app.app_context():
        drain(app.extensions["tributary"])


def event(kind: str, when: datetime, **fields) -> dict:
    """A website event of ``kind`` at ``when`` (its id made from both)."""
    return {"id": f"{kind}-{when.isoformat()}", "type": kind, "timestamp": when.isoformat(), **fields}


def fired(app) -> list[tuple[str, str]]:
    """The feed's `trigger.fired` entries as (trigger, profile_id), oldest first."""
    with app.extensions["tributary"].session() as session:
        changes = session.scalars(select(Change).where(Change.type == "trigger.fired").order_by(Change.id))
        return [(c.data["trigger"], c.profile_id) for c in changes]


def matches(engine) -> list[tuple[str, str, datetime]]:
    """Every stored match as (trigger, profile_id, matched_at)."""
    with Session(engine) as session:
        return sorted((m.trigger, m.profile_id, m.matched_at) for m in session.scalars(select(TriggerMatch)))


def profile_of(engine, kind: str, value: str) -> str:
    return Store(engine).profile_of(kind, value)


def visits(many: int) -> list[UnifiedRecord]:
    """``many`` anonymous visitors with a page view each at T0 (inbox ids of their own)."""
    return [UnifiedRecord(source="website", inbox_id=10 ** 6 + n, observed_at=T0,
                          identities=[("website_anonymous_id", f"anon-{n}")], traits={},
                          activities=[act("page.viewed", f"pv-{n}")]) for n in range(many)]


# -- firing through the pipeline ----------------------------------------------------------

def test_a_trigger_fires_once_per_start_of_a_match(start, db_engine):
    app = start(triggers={"french": {"trait": "locale", "eq": "fr"},
                          "form_filled": {"rule": {"activity": "form.submitted"}, "description": "Sent a form"}})
    at = [MORNING + timedelta(hours=h) for h in range(5)]
    post(app, event("identify", at[0], email="ana@example.com", traits={"locale": "fr"}))
    ana = profile_of(db_engine, "email", "ana@example.com")
    with app.extensions["tributary"].session() as session:
        assert [(c.type, c.data) for c in session.scalars(select(Change).order_by(Change.id))] == [
            ("profile.created", {}),
            ("profile.updated", {"fields": ["identities", "traits.email", "traits.locale"]}),
            ("trigger.fired", {"trigger": "french"})]  # in the batch's transaction, after its changes
    assert fired(app) == [("french", ana)]
    post(app, event("identify", at[1], email="ana@example.com", traits={"first_name": "Ana", "locale": "fr"}))
    assert fired(app) == [("french", ana)]  # still French: nothing new
    post(app, event("form.submitted", at[2], email="ana@example.com", properties={"form_id": "newsletter"}))
    assert fired(app) == [("french", ana), ("form_filled", ana)]
    post(app, event("identify", at[3], email="ana@example.com", traits={"locale": "en"}))
    assert fired(app) == [("french", ana), ("form_filled", ana)]  # stopped matching: no change, the match is gone
    assert matches(db_engine) == [("form_filled", ana, at[2])]
    post(app, event("identify", at[4], email="ana@example.com", traits={"locale": "fr"}))
    assert fired(app) == [("french", ana), ("form_filled", ana), ("french", ana)]
    assert matches(db_engine) == [("form_filled", ana, at[2]), ("french", ana, at[4])]


def test_a_match_that_begins_and_ends_within_one_batch_does_not_fire(start, db_engine):
    app = start(triggers={"french": {"trait": "locale", "eq": "fr"}})
    post(app, event("identify", MORNING, email="ana@example.com", traits={"locale": "fr"}),
         event("identify", MORNING + timedelta(hours=1), email="ana@example.com", traits={"locale": "en"}))
    assert (fired(app), matches(db_engine)) == ([], [])


def test_a_trigger_on_a_stage_fires_after_the_stage_change(start, db_engine):
    app = start(lifecycle={"preset": "standard"}, triggers={"lead": {"stage": "consideration"}})
    post(app, event("form.submitted", MORNING, email="ana@example.com", properties={"form_id": "demo"}))
    ana = profile_of(db_engine, "email", "ana@example.com")
    with app.extensions["tributary"].session() as session:
        assert [(c.type, c.data) for c in session.scalars(select(Change).where(Change.type.in_(
            ("profile.stage_changed", "trigger.fired"))).order_by(Change.id))] == [
            ("profile.stage_changed", {"from": None, "to": "consideration"}), ("trigger.fired", {"trigger": "lead"})]
    assert matches(db_engine) == [("lead", ana, MORNING)]


# -- the clock: the periodic refresh in the sweeper ------------------------------------------

class Monotonic:
    """The process clock the refresh timer reads, moved by hand (seconds)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sweeper(monkeypatch):
    """Run ``jobs.sweep`` with a hand-moved process clock and wall clock; count the refreshes."""
    clock = Monotonic()
    # the next full hour: after the hub started (changes made before a subscription started are not sent)
    now = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    wall = {"now": now}
    refreshes = []
    real = evaluation.refresh
    monkeypatch.setattr(periodic, "monotonic", clock)
    monkeypatch.setattr(evaluation, "utcnow", lambda: wall["now"])
    monkeypatch.setattr(evaluation.REFRESHING, "last", float("-inf"))
    monkeypatch.setattr(change_feed.PRUNING, "last", float("inf"))  # no pruning in these tests
    monkeypatch.setattr(evaluation, "refresh", lambda hub, **kw: refreshes.append(wall["now"]) or real(hub, **kw))

    class Sweeper:
        start = now

        def sweep(self, app, *, minutes: float = 0, days: float = 0) -> None:
            clock.now += minutes * 60
            wall["now"] += timedelta(days=days, minutes=minutes)
            with app.app_context():
                jobs.sweep()

        @property
        def refreshes(self) -> list[datetime]:
            return refreshes

    return Sweeper()


def test_a_time_window_trigger_fires_from_the_periodic_refresh(start, db_engine, sweeper):
    app = start(triggers={"lapsed": LAPSED}, segments_refresh_minutes=60)
    viewed = sweeper.start - timedelta(days=1)
    post(app, event("page.viewed", viewed, anonymous_id="anon-1", properties={"url": "https://shop.example.com/"}))
    visitor = profile_of(db_engine, "website_anonymous_id", "anon-1")
    sweeper.sweep(app)
    assert (sweeper.refreshes, fired(app)) == ([sweeper.start], [])  # the first sweep refreshes at once
    sweeper.sweep(app, minutes=59, days=29)  # lapsed now, but the refresh is not due yet
    assert (len(sweeper.refreshes), fired(app)) == (1, [])
    sweeper.sweep(app, minutes=1)
    refreshed = sweeper.start + timedelta(days=29, hours=1)
    assert (sweeper.refreshes[1:], fired(app)) == ([refreshed], [("lapsed", visitor)])
    assert matches(db_engine) == [("lapsed", visitor, refreshed)]  # a clock-caused start is dated at the refresh
    sweeper.sweep(app, minutes=60)
    assert (len(sweeper.refreshes), fired(app)) == (3, [("lapsed", visitor)])  # still lapsed: fires no more
    back = sweeper.start + timedelta(days=29, hours=2)
    post(app, event("page.viewed", back, anonymous_id="anon-1", properties={"url": "https://shop.example.com/"}))
    assert matches(db_engine) == []  # came back: no longer lapsed
    sweeper.sweep(app, minutes=60, days=30)
    assert (len(sweeper.refreshes), fired(app)) == (4, [("lapsed", visitor), ("lapsed", visitor)])


def test_the_sweeper_refreshes_only_rules_that_read_the_clock(start, sweeper):
    app = start(triggers={"known": {"identity": "email"}}, segments={"french": {"trait": "locale", "eq": "fr"}})
    sweeper.sweep(app)
    sweeper.sweep(app, minutes=120)
    assert sweeper.refreshes == []


def test_a_null_refresh_interval_turns_the_periodic_refresh_off(start, sweeper):
    app = start(triggers={"lapsed": LAPSED}, segments_refresh_minutes=None)
    sweeper.sweep(app)
    sweeper.sweep(app, minutes=600)
    assert sweeper.refreshes == []


def test_the_periodic_refresh_moves_time_window_segments_too(start, db_engine, sweeper):
    app = start(segments={"recent": {"activity": "page.viewed", "within_days": 7}}, segments_refresh_minutes=30)
    post(app, event("page.viewed", sweeper.start - timedelta(days=6), anonymous_id="anon-1"))
    visitor = profile_of(db_engine, "website_anonymous_id", "anon-1")
    sweeper.sweep(app)
    sweeper.sweep(app, minutes=29, days=1)
    with Session(db_engine) as session:
        assert session.scalars(select(SegmentMember.profile_id)).all() == [visitor]
    sweeper.sweep(app, minutes=1)
    assert len(sweeper.refreshes) == 2
    with Session(db_engine) as session:
        assert session.scalars(select(SegmentMember.profile_id)).all() == []
        assert session.scalars(select(Change.type).where(Change.type.like("segment.%")).order_by(Change.id)).all() \
            == ["segment.entered", "segment.exited"]


@pytest.mark.postgres
def test_a_profile_a_running_transaction_holds_is_left_to_it(make_app, db_engine, monkeypatch):
    app = make_app(triggers={"lapsed": LAPSED})
    hub = app.extensions["tributary"]
    Store(db_engine).write(*visits(2))
    first, second = sorted(profile_of(db_engine, "website_anonymous_id", f"anon-{n}") for n in range(2))
    monkeypatch.setattr(evaluation, "utcnow", lambda: T0 + timedelta(days=400))
    with db_engine.connect() as other, other.begin():  # another refresh (or a batch) holds the first profile
        other.execute(text("SELECT id FROM profiles WHERE id = :id FOR UPDATE"), {"id": first})
        assert evaluation.refresh(hub) == (2, 1)
    assert fired(app) == [("lapsed", second)]
    assert evaluation.refresh(hub) == (2, 1)
    assert evaluation.refresh(hub) == (2, 0)
    assert fired(app) == [("lapsed", second), ("lapsed", first)]


@pytest.mark.postgres
def test_two_refreshes_at_once_fire_each_trigger_once(make_app, db_engine, monkeypatch):
    app = make_app(triggers={"lapsed": LAPSED}, segments={"lapsed": LAPSED})
    hub = app.extensions["tributary"]
    people = 1200  # three transactions of 500 per refresh
    Store(db_engine).write(*visits(people))
    monkeypatch.setattr(evaluation, "utcnow", lambda: T0 + timedelta(days=400))
    ready, results, errors = threading.Barrier(2), [], []

    def run():
        ready.wait()
        try:
            results.append(evaluation.refresh(hub)[1])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(results) == 2 * people  # one trigger.fired and one segment.entered per profile, whoever wrote it
    lapsed = fired(app)
    assert len(lapsed) == len(set(lapsed)) == people
    with Session(db_engine) as session:
        entered = session.scalars(select(Change.profile_id).where(Change.type == "segment.entered")).all()
    assert len(entered) == len(set(entered)) == people
    assert len(matches(db_engine)) == people


# -- merges, erasure, rebuild ----------------------------------------------------------------

def test_a_merged_away_profiles_matches_go_and_its_survivor_is_evaluated(start, db_engine):
    app = start(triggers={"known": {"identity": "email"}, "visited": {"activity": "page.viewed"}})
    at = [MORNING + timedelta(hours=h) for h in range(3)]
    post(app, event("page.viewed", at[0], anonymous_id="anon-1"))
    post(app, event("identify", at[1], email="ana@example.com"))
    visitor, ana = profile_of(db_engine, "website_anonymous_id", "anon-1"), profile_of(db_engine, "email",
                                                                                         "ana@example.com")
    assert fired(app) == [("visited", visitor), ("known", ana)]
    post(app, event("identify", at[2], anonymous_id="anon-1", email="ana@example.com"))
    assert profile_of(db_engine, "email", "ana@example.com") == visitor  # the older profile survives
    # the visitor was visited already (no new firing), and is known from now on (fired); Ana's match is gone
    assert fired(app) == [("visited", visitor), ("known", ana), ("known", visitor)]
    assert matches(db_engine) == [("known", visitor, at[1]), ("visited", visitor, at[0])]

    assert unmerge(app.extensions["tributary"], ana) == (visitor, ana)
    assert fired(app)[3:] == [("known", ana)]  # Ana is known again; the visitor is not
    assert matches(db_engine) == [("known", ana, at[1]), ("visited", visitor, at[0])]


def test_erasing_a_person_erases_their_matches(start, db_engine):
    app = start(triggers={"known": {"identity": "email"}})
    later = MORNING + timedelta(hours=1)
    post(app, event("identify", MORNING, email="ana@example.com"), event("identify", later, email="bea@example.com"))
    ana, bea = (profile_of(db_engine, "email", f"{name}@example.com") for name in ("ana", "bea"))
    assert matches(db_engine) == sorted([("known", ana, MORNING), ("known", bea, later)])
    assert erase(app.extensions["tributary"], ana) is True
    assert matches(db_engine) == [("known", bea, later)]


def test_rebuild_gives_the_same_matches_and_fires_again_as_segments_enter_again(start, db_engine):
    rules = {"known": {"identity": "email"},
             "recent": {"activity": "page.viewed", "within_days": 7},
             "french": {"trait": "locale", "eq": "fr"}}
    app = start(triggers=rules, segments=rules)
    viewed = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)
    post(app, event("page.viewed", viewed, anonymous_id="anon-1"))
    post(app, event("identify", viewed + timedelta(hours=1), anonymous_id="anon-1", email="ana@example.com",
                    traits={"locale": "fr"}))
    post(app, event("identify", viewed + timedelta(hours=2), email="bea@example.com", traits={"locale": "fr"}))
    post(app, event("identify", viewed + timedelta(hours=3), email="bea@example.com", traits={"locale": "de"}))
    ana, bea = (profile_of(db_engine, "email", f"{name}@example.com") for name in ("ana", "bea"))
    before = matches(db_engine)
    assert before == [("french", ana, viewed + timedelta(hours=1)), ("known", ana, viewed + timedelta(hours=1)),
                      ("known", bea, viewed + timedelta(hours=2)), ("recent", ana, viewed)]
    assert fired(app) == [("recent", ana), ("french", ana), ("known", ana), ("french", bea), ("known", bea)]
    with app.extensions["tributary"].session() as session:
        entered_before = session.scalar(select(Change.id).order_by(Change.id.desc()).limit(1))
    assert rebuild(app.extensions["tributary"]) == 4  # one batch of 50
    assert matches(db_engine) == before
    # the replay writes its changes again, under the same ids: trigger.fired as segment.entered
    with app.extensions["tributary"].session() as session:
        replayed = [(c.type, c.data, c.profile_id) for c in session.scalars(
            select(Change).where(Change.id > entered_before, Change.type.in_(("segment.entered", "trigger.fired")))
            .order_by(Change.id))]
    assert {profile: [(kind, data) for kind, data, p in replayed if p == profile] for profile in (ana, bea)} == {
        ana: [("segment.entered", {"segment": "french"}), ("segment.entered", {"segment": "known"}),
              ("segment.entered", {"segment": "recent"}), ("trigger.fired", {"trigger": "french"}),
              ("trigger.fired", {"trigger": "known"}), ("trigger.fired", {"trigger": "recent"})],
        bea: [("segment.entered", {"segment": "known"}), ("trigger.fired", {"trigger": "known"})]}
    assert len(replayed) == 8


# -- outbound --------------------------------------------------------------------------------

def test_a_subscription_to_trigger_fired_receives_each_firing(start, db_engine, sweeper):
    receiver = Receiver()
    try:
        app = start(triggers={"known": {"identity": "email"}, "lapsed": LAPSED},
                    outbound=[{"name": "crm", "url": receiver.url, "secret": OUTBOUND_SECRET,
                               "events": ["trigger.fired"]}])
        hub = app.extensions["tributary"]
        signals = []
        hub.queue.signal = lambda job, lease: signals.append(job) or True
        post(app, event("identify", sweeper.start - timedelta(days=1), email="ana@example.com"),
             event("page.viewed", sweeper.start - timedelta(days=1), email="ana@example.com"))
        ana = profile_of(db_engine, "email", "ana@example.com")
        assert outbound.send_due(hub) == (1, False)
        signals.clear()
        sweeper.sweep(app, days=30)
        assert signals == ["hub.jobs.deliver"]  # the refresh fired: the sender is woken at once
        assert outbound.send_due(hub) == (1, False)
        with hub.session() as session:
            changes = session.scalars(select(Change).where(Change.type == "trigger.fired").order_by(Change.id)).all()
        assert [verified(request) for request in receiver.received] == [
            {"type": "trigger.fired", "timestamp": c.created_at.isoformat().replace("+00:00", "Z"),
             "data": {"profile_id": ana, "trigger": name}} for c, name in zip(changes, ("known", "lapsed"))]
        assert [request.id for request in receiver.received] == [f"msg_crm_{c.id}" for c in changes]
        assert json.loads(receiver.received[1].body)["timestamp"] == (
            sweeper.start + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    finally:
        receiver.close()


# -- configuration ---------------------------------------------------------------------------

def test_the_long_and_the_short_form_of_a_trigger_and_the_refresh_setting():
    config = load({"triggers": {"vip": {"metric": "orders_count", "gte": 5}, "lapsed": LAPSED}})
    assert (config.triggers["vip"].description, config.triggers["lapsed"].description) == (
        None, "Visited, but not in the last 30 days")
    assert (config.segments_refresh_minutes, load({"segments_refresh_minutes": None}).segments_refresh_minutes) == (
        60, None)
    assert load({}).triggers == {}


def test_trigger_configuration_errors_name_the_key_and_the_reason():
    assert problems_of({"lifecycle": {"preset": "standard"}, "segments_refresh_minutes": 0, "triggers": {
        "has space": {"identity": "email"},
        "a": {"metric": "orders_count", "gte": 2, "lt": 5},
        "b": {"rule": {"all": [{"stage": "customer"}, {"any": []}]}},
        "c": {"rule": {"not": {"trait": "", "eq": "x"}}, "colour": "red"},
        "d": {"activity": "order.placed", "within_days": -1},
        "e": "vip",
    }}) == {
        "segments_refresh_minutes": "Must be greater than or equal to 1.",
        "triggers.has space.key": "1 to 64 letters, digits, '_', '-' or '.'",
        "triggers.a.lt": "one operator per condition (also given: gte)",
        "triggers.b.rule.all[1].any": "must be a non-empty list of rules",
        "triggers.c.colour": "Unknown field.",
        "triggers.c.rule.not.trait": "a trait name (1-64 characters), optionally .key.key",
        "triggers.d.within_days": "Must be greater than 0.",
        "triggers.e": "must be a mapping with one of: metric, trait, identity, activity, stage, all, any, not",
    }
    assert problems_of({"lifecycle": {"preset": "standard"},
                        "triggers": {"vip": {"rule": {"any": [{"stage": "customer"}, {"stage": "retention"}]}}}}) == {
        "triggers.vip.rule.any[0].stage": "unknown stage customer (stages: awareness, interest, consideration, "
                                          "conversion, retention, advocacy)"}
    assert problems_of({"triggers": {"vip": {"stage": "retention"}}}) == {
        "triggers.vip.stage": "no lifecycle stages are configured"}
    assert problems_of({"segments_refresh_minutes": "hourly"}) == {"segments_refresh_minutes": "Not a valid integer."}
