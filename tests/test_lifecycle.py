"""Lifecycle stages: the standard funnel step by step, batches, late records, merges, rebuild, config."""
import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import evaluation
from hub.models import Change, Profile, SegmentMember, StageStay
from hub.profiles import BatchWriter
from hub.rebuild import rebuild
from hub.unmerge import unmerge
from tests.api.conftest import T0, Store, act, rec
from tests.conftest import settle
from tests.connectors import test_shopify as shopify
from tests.test_config import problems_of
from tests.test_website import SECRET as WEBSITE_SECRET, send

MINE = ("profile.stage_changed", "segment.entered", "segment.exited")
STANDARD = {"lifecycle": {"preset": "standard"}}


@pytest.fixture
def app(make_app):
    return make_app(**STANDARD)


def process(app, *records):
    """Write the records as one batch and evaluate it, as ``hub.pipeline.process_batch`` does."""
    hub = app.extensions["tributary"]
    with hub.session.begin() as session:
        outcome = BatchWriter(session, hub.identity_rules, {}).apply(list(records))
        evaluation.after_batch(hub, session, list(records), outcome)
    return outcome


def hours(moment):
    """A time as hours after T0 (an int when whole)."""
    value = (moment - T0) / timedelta(hours=1)
    return int(value) if value == int(value) else value


def history(engine, profile):
    """The profile's stays as (stage, entered, exited) in hours after T0, oldest first."""
    with Session(engine) as session:
        stays = session.scalars(select(StageStay).where(StageStay.profile_id == profile)
                                .order_by(StageStay.entered_at))
        return [(s.stage, hours(s.entered_at), None if s.exited_at is None else hours(s.exited_at)) for s in stays]


def feed(engine, types=MINE):
    """The change feed's entries of these types as (type, profile_id, data), in order."""
    with Session(engine) as session:
        return [(c.type, c.profile_id, c.data) for c in session.scalars(
            select(Change).where(Change.type.in_(types)).order_by(Change.id))]


def stage_of(engine, profile):
    with Session(engine) as session:
        return session.get(Profile, profile).lifecycle_stage


def moves(profile, *stages):
    """The stage_changed entries of a profile going through ``stages`` (None first)."""
    return [("profile.stage_changed", profile, {"from": a, "to": b}) for a, b in zip((None, *stages), stages)]


ANON = ("website_anonymous_id", "anon-1")
ANA = ("email", "ana@example.com")


def funnel():
    """Ana's records, one a step: a visit, identified, a form, two orders, a good rating."""
    return [
        rec("website", ANON, at=0, activities=[act("page.viewed", "pv-1", 0)]),
        rec("website", ANON, ANA, at=1),
        rec("website", ANA, at=2, activities=[act("form.submitted", "f-1", 2)]),
        rec("shopify", ANA, at=3, activities=[act("order.placed", "o-1", 3, amount="20.00", currency="EUR")]),
        rec("shopify", ANA, at=5, activities=[act("order.placed", "o-2", 5, amount="30.00", currency="EUR")]),
        rec("zendesk", ANA, at=6, activities=[act("satisfaction.rated", "r-1", 6, score="good")]),
    ]


def test_the_standard_funnel_step_by_step(app, db_engine):
    store = Store(db_engine)
    stages = []
    for record in funnel():
        process(app, record)
        stages.append(stage_of(db_engine, store.profile_of(*ANA) or store.profile_of(*ANON)))
    ana = store.profile_of(*ANA)
    assert stages == ["awareness", "interest", "consideration", "conversion", "retention", "advocacy"]
    assert history(db_engine, ana) == [("awareness", 0, 1), ("interest", 1, 2), ("consideration", 2, 3),
                                       ("conversion", 3, 5), ("retention", 5, 6), ("advocacy", 6, None)]
    assert feed(db_engine) == moves(ana, "awareness", "interest", "consideration", "conversion", "retention",
                                    "advocacy")


def test_the_feed_keeps_commit_order_with_the_batch_changes(app, db_engine):
    process(app, funnel()[0])
    anon = Store(db_engine).profile_of(*ANON)
    assert feed(db_engine, ("profile.created", "profile.updated", *MINE)) == [
        ("profile.created", anon, {}),
        ("profile.updated", anon, {"fields": ["identities", "metrics", "timeline"]}),
        ("profile.stage_changed", anon, {"from": None, "to": "awareness"})]


def test_one_batch_gives_the_same_history_as_one_record_a_batch(app, db_engine):
    process(app, *funnel())
    ana = Store(db_engine).profile_of(*ANA)
    assert history(db_engine, ana) == [("awareness", 0, 1), ("interest", 1, 2), ("consideration", 2, 3),
                                       ("conversion", 3, 5), ("retention", 5, 6), ("advocacy", 6, None)]
    assert feed(db_engine) == moves(ana, "advocacy")  # one change a batch: where the profile is now


def test_a_late_record_rewrites_the_history_from_its_time(app, db_engine):
    store = Store(db_engine)
    process(app, rec("website", ANON, at=0, activities=[act("page.viewed", "pv-1", 0)]))
    process(app, rec("website", ANON, ANA, at=2))
    ana = store.profile_of(*ANA)
    assert history(db_engine, ana) == [("awareness", 0, 2), ("interest", 2, None)]
    # pulled days later: an order the visitor placed at hour 1, before giving an e-mail
    process(app, rec("shopify", ANON, at=30, activities=[act("order.placed", "o-9", 1)]))
    assert history(db_engine, ana) == [("awareness", 0, 1), ("conversion", 1, None)]
    assert feed(db_engine)[-1] == ("profile.stage_changed", ana, {"from": "interest", "to": "conversion"})


def test_a_merge_closes_the_merged_profiles_stay_and_replays_the_survivor(make_app, db_engine):
    app = make_app(**STANDARD, segments={"known": {"identity": "email"}})
    store = Store(db_engine)
    process(app, rec("website", ANON, at=0, activities=[act("page.viewed", "pv-1", 0)]))
    process(app, rec("mailchimp", ANA, at=1))
    visitor, ana = store.profile_of(*ANON), store.profile_of(*ANA)
    process(app, rec("website", ANON, ANA, at=4))
    assert store.profile_of(*ANA) == visitor  # the older profile survives
    assert history(db_engine, ana) == [("interest", 1, 4)]
    assert history(db_engine, visitor) == [("awareness", 0, 1), ("interest", 1, None)]
    assert (stage_of(db_engine, ana), stage_of(db_engine, visitor)) == (None, "interest")
    assert feed(db_engine) == [
        ("profile.stage_changed", visitor, {"from": None, "to": "awareness"}),
        ("profile.stage_changed", ana, {"from": None, "to": "interest"}),
        ("segment.entered", ana, {"segment": "known"}),
        ("profile.stage_changed", visitor, {"from": "awareness", "to": "interest"}),
        ("segment.entered", visitor, {"segment": "known"}),
        ("segment.exited", ana, {"segment": "known"})]
    with Session(db_engine) as session:
        assert session.execute(select(SegmentMember.profile_id, SegmentMember.entered_at)).all() == [
            (visitor, T0 + timedelta(hours=1))]

    survivor, restored = unmerge(app.extensions["tributary"], ana)
    assert (survivor, restored) == (visitor, ana)
    assert history(db_engine, visitor) == [("awareness", 0, None)]
    assert history(db_engine, ana) == [("interest", 1, None)]
    # each profile's changes in order (the two profiles' relative order follows their ids)
    assert sorted(feed(db_engine)[6:], key=lambda change: change[1] != visitor) == [
        ("profile.stage_changed", visitor, {"from": "interest", "to": "awareness"}),
        ("segment.exited", visitor, {"segment": "known"}),
        ("profile.stage_changed", ana, {"from": None, "to": "interest"}),
        ("segment.entered", ana, {"segment": "known"})]


def test_own_stages_read_metrics_traits_and_identities(make_app, db_engine):
    app = make_app(lifecycle={"stages": [
        {"name": "lead", "rule": {"trait": "email", "present": True}},
        {"name": "customer", "rule": {"metric": "orders_count", "gte": 1}},
        {"name": "vip", "rule": {"all": [{"metric": "total_spent.EUR", "gte": 100}, {"identity": "phone"}]}},
    ]})
    process(app, rec("shopify", ANA, at=0, traits={"email": "ana@example.com"}))
    process(app, rec("shopify", ANA, at=1, activities=[act("order.placed", "o-1", 1, amount="60.00", currency="EUR")]))
    process(app, rec("shopify", ANA, at=2, activities=[act("order.placed", "o-2", 2, amount="40.00", currency="EUR")]))
    ana = Store(db_engine).profile_of(*ANA)
    assert history(db_engine, ana) == [("lead", 0, 1), ("customer", 1, None)]  # no phone yet
    process(app, rec("shopify", ANA, ("phone", "+14155550100"), at=3))
    assert history(db_engine, ana) == [("lead", 0, 1), ("customer", 1, 3), ("vip", 3, None)]


def test_without_a_lifecycle_nothing_is_computed(make_app, db_engine):
    app = make_app()
    process(app, *funnel())
    ana = Store(db_engine).profile_of(*ANA)
    assert (stage_of(db_engine, ana), history(db_engine, ana), feed(db_engine)) == (None, [], [])


def test_erasing_a_person_erases_their_history_and_memberships(make_app, db_engine):
    from hub.privacy import erase

    app = make_app(**STANDARD, segments={"known": {"identity": "email"}})
    process(app, *funnel())
    ana = Store(db_engine).profile_of(*ANA)
    assert erase(app.extensions["tributary"], ana) is True
    with Session(db_engine) as session:
        assert session.scalars(select(StageStay)).all() == session.scalars(select(SegmentMember)).all() == []


# -- through the real webhooks, and rebuild ---------------------------------------------

def shop_order(order_id: int, at: str) -> bytes:
    order = json.loads(shopify.fixture_body("orders_create"))
    order.update(id=order_id, name=f"#{order_id}", created_at=at, updated_at=at, processed_at=at,
                 email="ana@example.com", contact_email="ana@example.com")
    order["customer"]["email"] = "ana@example.com"
    return json.dumps(order, separators=(",", ":")).encode()


def people(engine):
    """Per person (by identifiers): stays as (stage, entered, exited) ISO, and segments."""
    with Session(engine) as session:
        result = {}
        for profile in session.scalars(select(Profile).where(Profile.merged_into.is_(None))):
            key = tuple(sorted((i.type, i.value) for i in profile_identities(session, profile.id)))
            stays = [(s.stage, s.entered_at.isoformat(), s.exited_at and s.exited_at.isoformat())
                     for s in session.scalars(select(StageStay).where(StageStay.profile_id == profile.id)
                                              .order_by(StageStay.entered_at))]
            members = sorted((m.segment, m.entered_at.isoformat()) for m in session.scalars(
                select(SegmentMember).where(SegmentMember.profile_id == profile.id)))
            result[key] = (profile.lifecycle_stage, stays, members)
        return result


def profile_identities(session, profile_id):
    from hub.models import Identity

    return session.scalars(select(Identity).where(Identity.profile_id == profile_id))


def test_rebuild_gives_the_same_history_as_processing_one_webhook_at_a_time(make_app, db_engine):
    app = make_app(connectors={"echo": {"enabled": False},
                               "website": {"enabled": True, "webhook_secret": WEBSITE_SECRET},
                               "shopify": {"enabled": True, "webhook_secret": shopify.SECRET}},
                   **STANDARD, segments={"buyers": {"activity": "order.placed"}})
    client = app.test_client()
    visit = {"id": "pv-1", "type": "page.viewed", "anonymous_id": "anon-7", "timestamp": "2026-10-01T09:00:00Z",
             "properties": {"url": "https://shop.example.com/"}}
    identify = {"id": "id-1", "type": "identify", "anonymous_id": "anon-7", "email": "ana@example.com",
                "timestamp": "2026-10-01T10:00:00Z"}
    form = {"id": "f-1", "type": "form.submitted", "email": "ana@example.com", "timestamp": "2026-10-01T11:00:00Z",
            "properties": {"form_id": "newsletter"}}
    for n, event in enumerate((visit, identify, form)):
        assert send(client, {"events": [event]}, msg_id=f"m{n}").status_code == 202
        settle(app)
    for n, (order_id, at) in enumerate(((9001, "2026-10-01T12:00:00Z"), (9002, "2026-10-03T12:00:00Z"))):
        body = shop_order(order_id, at)
        assert shopify.post(client, body, shopify.shopify_headers("orders/create", f"wh-{n}")).status_code == 202
        settle(app)
    before = people(db_engine)
    assert before == {(("email", "ana@example.com"), ("shopify_customer_id", "115310627314723954"),
                       ("website_anonymous_id", "anon-7")): (
        "retention",
        [("awareness", "2026-10-01T09:00:00+00:00", "2026-10-01T10:00:00+00:00"),
         ("interest", "2026-10-01T10:00:00+00:00", "2026-10-01T11:00:00+00:00"),
         ("consideration", "2026-10-01T11:00:00+00:00", "2026-10-01T12:00:00+00:00"),
         ("conversion", "2026-10-01T12:00:00+00:00", "2026-10-03T12:00:00+00:00"),
         ("retention", "2026-10-03T12:00:00+00:00", None)],
        [("buyers", "2026-10-01T12:00:00+00:00")])}
    assert rebuild(app.extensions["tributary"]) == 5  # in one batch of 50
    assert people(db_engine) == before


# -- configuration ---------------------------------------------------------------------

def test_lifecycle_configuration_errors_name_the_key_and_the_reason():
    assert problems_of({"lifecycle": {"preset": "funnel"}}) == {"lifecycle.preset": "Must be one of: standard."}
    both = {"preset": "standard", "stages": [{"name": "a", "rule": {"identity": "email"}}]}
    assert problems_of({"lifecycle": both}) == {"lifecycle.stages": "give either preset or stages, not both"}
    assert problems_of({"lifecycle": {"stages": []}}) == {"lifecycle.stages": "Shorter than minimum length 1."}
    assert problems_of({"lifecycle": {"stages": [
        {"name": "lead", "rule": {"identity": "email"}},
        {"name": "lead", "rule": {"identity": "phone"}}]}}) == {
        "lifecycle.stages[1].name": "lead is already the name of stages[0]"}
    assert problems_of({"lifecycle": {"stages": [
        {"name": "hot", "rule": {"activity": "checkout.started", "within_days": 7}},
        {"name": "again", "rule": {"any": [{"identity": "email"}, {"not": {"stage": "hot"}}]}},
        {"name": "bad name!", "rule": {"activity": "order.shipped"}},
        {"name": "spender", "rule": {"metric": "total_spent.EUR", "gte": "a lot"}},
        {"rule": {"metric": "orders_count"}}]}}) == {
        "lifecycle.stages[0].rule.within_days": "a lifecycle rule cannot depend on the clock (use it in a segment)",
        "lifecycle.stages[1].rule.any[1].not.stage": "a lifecycle rule cannot depend on a stage",
        "lifecycle.stages[2].name": "1 to 32 letters, digits, '_', '-' or '.'",
        "lifecycle.stages[2].rule.activity": "'order.shipped' is not an activity type of the unified vocabulary",
        "lifecycle.stages[4].name": "Missing data for required field.",
        "lifecycle.stages[4].rule.metric": "needs one of eq, ne, gt, gte, lt, lte, in, present"}
    # a bare number string compares as a number: only text that is not one is refused where order matters
    assert problems_of({"lifecycle": {"stages": [{"name": "x", "rule": {"metric": "orders_count", "gte": [2]}}]}}) == {
        "lifecycle.stages[0].rule.gte": "must be a number or a string"}


def test_the_standard_preset_is_the_documented_funnel():
    from hub.lifecycle import STANDARD as PRESET
    from tests.test_config import load

    assert load(STANDARD).lifecycle.names == [stage["name"] for stage in PRESET] == [
        "awareness", "interest", "consideration", "conversion", "retention", "advocacy"]
    assert load({}).lifecycle.names == []
