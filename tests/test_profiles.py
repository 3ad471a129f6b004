"""Identity resolution and the profile store, told as short stories."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from hub.db import array_literal
from hub.identity import IdentityRules, identifier_hash
from hub.models import Activity, Change, Identity, Merge, Profile, Suppression, Trait
from hub.profiles import HOLDERS, LOCKED_PROFILES, BatchWriter, profile_id
from hub.unified import UnifiedActivity, UnifiedRecord

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
_next_inbox = iter(range(1, 10_000))


def rec(source, *identities, at=0, traits=None, activities=(), retired=()):
    return UnifiedRecord(source=source, inbox_id=next(_next_inbox), observed_at=T0 + timedelta(hours=at),
                         identities=list(identities), traits=dict(traits or {}),
                         activities=list(activities), retired=list(retired))


def act(kind, source_id, at=0, **properties):
    return UnifiedActivity(kind, source_id, T0 + timedelta(hours=at), properties)


@pytest.fixture
def store(db_engine):
    """Write batches like a drain does; read back people as sets of identities."""

    class Store:
        rules = IdentityRules()
        priority: dict = {}

        def write(self, *records):
            with Session(db_engine) as session, session.begin():
                return BatchWriter(session, self.rules, self.priority).apply(list(records))

        def people(self):
            with Session(db_engine) as session:
                live = set(session.scalars(select(Profile.id).where(Profile.merged_into.is_(None))))
                found = {}
                for ident in session.scalars(select(Identity)):
                    assert ident.profile_id in live
                    found.setdefault(ident.profile_id, set()).add((ident.type, ident.value))
                return sorted((sorted(v) for v in found.values()))

        def profile_of(self, kind, value):
            with Session(db_engine) as session:
                return session.scalar(select(Identity.profile_id).where(Identity.type == kind,
                                                                         Identity.value == value))

        def traits(self, profile):
            with Session(db_engine) as session:
                return {t.name: (t.value, t.source) for t in
                        session.scalars(select(Trait).where(Trait.profile_id == profile))}

        def timeline(self, profile):
            with Session(db_engine) as session:
                return [(a.type, a.source, a.source_id) for a in session.scalars(
                    select(Activity).where(Activity.profile_id == profile)
                    .order_by(Activity.occurred_at.desc(), Activity.id.desc()))]

        def metrics(self, profile):
            with Session(db_engine) as session:
                return session.get(Profile, profile).metrics

        def session(self):
            return Session(db_engine)

    return Store()


def test_one_person_across_platforms_is_one_profile(store):
    store.write(rec("shopify", ("email", " Ana.Silva@Example.com "), ("shopify_customer_id", "101"), at=0,
                    traits={"first_name": "Ana"},
                    activities=[act("order.placed", "o-1", 0, amount="40.00", currency="USD")]))
    store.write(rec("stripe", ("email", "ana.silva@example.com"), ("stripe_customer_id", "cus_9"), at=1,
                    activities=[act("payment.succeeded", "ch_1", 1, amount="40.00", currency="USD")]))
    store.write(rec("zendesk", ("email", "ana.silva@example.com"), ("zendesk_user_id", "55"), at=2,
                    activities=[act("ticket.opened", "t-8", 2, ticket_id="8", status="open")]))
    assert store.people() == [[("email", "ana.silva@example.com"), ("shopify_customer_id", "101"),
                               ("stripe_customer_id", "cus_9"), ("zendesk_user_id", "55")]]
    ana = store.profile_of("email", "ana.silva@example.com")
    assert store.timeline(ana) == [("ticket.opened", "zendesk", "t-8"), ("payment.succeeded", "stripe", "ch_1"),
                                   ("order.placed", "shopify", "o-1")]
    assert store.metrics(ana) == {
        "orders_count": 1, "total_spent": {"USD": "40.00"}, "currency": "USD",
        "last_order_at": "2026-11-01T09:00:00+00:00", "payments_count": 1, "total_paid": {"USD": "40.00"},
        "open_tickets": 1, "first_seen_at": "2026-11-01T09:00:00+00:00",
        "last_seen_at": "2026-11-01T11:00:00+00:00"}


def test_a_profile_id_is_a_version_8_uuid_led_by_the_inbox_id_of_the_record_that_made_it(store):
    made = [profile_id(inbox_id, ("email", "ana@example.com")) for inbox_id in (1, 255, 256, 70_000, 2**48 - 1)]
    assert [uuid.UUID(p).version for p in made] == [8] * 5
    assert [uuid.UUID(p).variant for p in made] == [uuid.RFC_4122] * 5
    assert [p[:14] for p in made] == ["00000000-0001-", "00000000-00ff-", "00000000-0100-", "00000001-1170-",
                                      "ffffffff-ffff-"]
    assert made == sorted(made)
    assert profile_id(7, ("email", "ana@example.com")) == profile_id(7, ("email", "ana@example.com"))
    assert profile_id(7, ("email", "ana@example.com")) != profile_id(7, ("email", "bo@example.com"))
    first = rec("shopify", ("email", "ana@example.com"))
    store.write(first)
    assert store.profile_of("email", "ana@example.com") == profile_id(first.inbox_id, ("email", "ana@example.com"))


def test_records_pointing_at_two_people_merge_into_the_oldest_with_evidence(store):
    store.write(rec("website", ("website_anonymous_id", "anon-1"), at=5,
                    activities=[act("page.viewed", "pv-1", 5)]))
    store.write(rec("mailchimp", ("email", "bo@example.com"), at=1, traits={"first_name": "Bo"}))
    older = store.profile_of("email", "bo@example.com")
    newer = store.profile_of("website_anonymous_id", "anon-1")
    link = rec("website", ("website_anonymous_id", "anon-1"), ("email", "bo@example.com"), at=6)
    outcome = store.write(link)
    assert store.people() == [[("email", "bo@example.com"), ("website_anonymous_id", "anon-1")]]
    assert store.profile_of("website_anonymous_id", "anon-1") == older
    assert outcome.merges == [(older, newer, ("website_anonymous_id", "anon-1"), link.inbox_id)]
    with store.session() as session:
        merge = session.scalars(select(Merge)).one()
        assert (merge.survivor_id, merge.merged_id, merge.inbox_id) == (older, newer, link.inbox_id)
        assert session.get(Profile, newer).merged_into == older
    assert store.timeline(older) == [("page.viewed", "website", "pv-1")]
    assert store.traits(older) == {"first_name": ("Bo", "mailchimp")}


def test_a_shared_family_phone_does_not_merge_two_customers(store):
    store.write(rec("shopify", ("shopify_customer_id", "1"), ("phone", "+1 415 555 2671"), at=0))
    outcome = store.write(rec("shopify", ("shopify_customer_id", "2"), ("phone", "(415) 555-2671"), at=1,
                              traits={"first_name": "Kid"}))
    assert store.people() == [[("phone", "+14155552671"), ("shopify_customer_id", "1")],
                              [("shopify_customer_id", "2")]]
    assert [(ident, reason) for _, ident, reason in outcome.conflicts] == [(("phone", "+14155552671"), "limit")]
    kid = store.profile_of("shopify_customer_id", "2")
    assert store.traits(kid) == {"first_name": ("Kid", "shopify")}


def test_an_old_update_arriving_late_changes_nothing(store):
    store.write(rec("shopify", ("email", "cy@example.com"), at=10, traits={"first_name": "Cyrus", "locale": "fr"}))
    store.write(rec("shopify", ("email", "cy@example.com"), at=2, traits={"first_name": "Cy"}))
    person = store.profile_of("email", "cy@example.com")
    assert store.traits(person) == {"first_name": ("Cyrus", "shopify"), "locale": ("fr", "shopify")}
    store.write(rec("shopify", ("email", "cy@example.com"), at=11, traits={"first_name": "Cyrus J."}))
    assert store.traits(person)["first_name"] == ("Cyrus J.", "shopify")


def test_a_trusted_source_beats_a_newer_value_from_another(store):
    store.priority = {"email_consent": ["mailchimp"]}
    store.write(rec("mailchimp", ("email", "di@example.com"), at=1, traits={"email_consent": "unsubscribed"}))
    store.write(rec("shopify", ("email", "di@example.com"), at=5, traits={"email_consent": "subscribed"}))
    assert store.traits(store.profile_of("email", "di@example.com")) == {
        "email_consent": ("unsubscribed", "mailchimp")}


def test_sources_rank_in_their_configured_order_then_by_time(store, db_engine):
    store.priority = {"plan's tier": ["stripe", "shopify"], "email_consent": ["mailchimp"]}
    ev = ("email", "ev@example.com")
    store.write(rec("stripe", ev, at=1, traits={"plan's tier": "gold"}))
    person = store.profile_of(*ev)
    outcomes = [store.write(rec("shopify", ev, at=5, traits={"plan's tier": "silver"})),
                store.write(rec("web", ev, at=9, traits={"plan's tier": "bronze", "locale": "pt"})),
                store.write(rec("stripe", ev, at=0, traits={"plan's tier": "tin"}))]
    assert store.traits(person) == {"plan's tier": ("gold", "stripe"), "locale": ("pt", "web")}
    store.write(rec("stripe", ev, at=3, traits={"plan's tier": "platinum"}))
    assert store.traits(person)["plan's tier"] == ("platinum", "stripe")
    assert [outcome.touched for outcome in outcomes] == [{person}] * 3
    with Session(db_engine) as session:  # only the trait that changed is announced
        announced = [c.data["fields"] for c in session.scalars(select(Change).where(
            Change.type == "profile.updated").order_by(Change.id))]
    assert announced == [["identities", "traits.plan's tier"], ["traits.locale"], ["traits.plan's tier"]]


def test_junk_identifiers_join_nobody(store):
    store.write(rec("web", ("email", "test@test.com"), ("phone", "0"), ("website_anonymous_id", "a1"), at=0))
    store.write(rec("web", ("email", "TEST@test.com"), ("email", "noreply@shop.example"),
                    ("website_anonymous_id", "a2"), at=1))
    assert store.people() == [[("website_anonymous_id", "a1")], [("website_anonymous_id", "a2")]]


def test_the_email_limit_keeps_the_sixth_address_out(store):
    emails = [("email", f"e{i}@example.com") for i in range(6)]
    store.write(rec("web", ("website_user_id", "u1"), *emails[:5], at=0))
    outcome = store.write(rec("web", ("website_user_id", "u1"), emails[5], at=1))
    assert store.people() == [sorted([("website_user_id", "u1"), *emails[:5]])]
    assert [ident for _, ident, _ in outcome.conflicts] == [emails[5]]


def test_first_and_last_seen_after_an_order_and_a_merge_come_from_the_stored_metrics(store, db_engine):
    fi, gil = ("email", "fi@example.com"), ("shopify_customer_id", "77")
    store.write(rec("web", fi, at=1, activities=[act("page.viewed", "v1", at=1)]))
    store.write(rec("shopify", gil, at=9, activities=[act("page.viewed", "v2", at=9)]))
    spans = []

    def record(conn, cursor, statement, parameters, *args):
        if "max(activities.occurred_at)" in statement:
            spans.append(statement)

    event.listen(db_engine, "before_cursor_execute", record)
    try:  # the order joins both people: one profile, spanning both timelines
        store.write(rec("shopify", fi, gil, at=5, activities=[act("order.placed", "o1", at=5, amount="12.50",
                                                                  currency="EUR")]))
    finally:
        event.remove(db_engine, "before_cursor_execute", record)
    person = store.profile_of(*fi)
    with Session(db_engine) as session:
        metrics = session.get(Profile, person).metrics
    assert spans == []
    assert (metrics["first_seen_at"], metrics["last_seen_at"], metrics["orders_count"], metrics["total_spent"]) == (
        (T0 + timedelta(hours=1)).isoformat(), (T0 + timedelta(hours=9)).isoformat(), 1, {"EUR": "12.50"})
    assert store.profile_of(*gil) == person


def test_identifiers_are_counted_only_for_a_profile_a_record_may_add_to(store, db_engine):
    emails = [("email", f"c{i}@example.com") for i in range(5)]
    store.write(rec("web", ("website_user_id", "c1"), *emails, at=0))
    store.write(rec("web", ("website_user_id", "c2"), at=0))
    counted = []

    def record(conn, cursor, statement, parameters, *args):
        if "count(" in statement and "FROM identities" in statement:
            counted.append(statement)

    event.listen(db_engine, "before_cursor_execute", record)
    try:
        store.write(rec("web", ("website_user_id", "c1"), emails[3], at=1),  # nothing new: nothing counted
                    rec("web", ("website_user_id", "c2"), emails[0], at=2))  # two people: both counted
        nothing_new = len(counted)
        store.write(rec("web", ("website_user_id", "c2"), ("email", "c5@example.com"), at=3))
    finally:
        event.remove(db_engine, "before_cursor_execute", record)
    assert (nothing_new, len(counted)) == (1, 2)
    assert store.people() == [[*emails, ("website_user_id", "c1")], [("email", "c5@example.com"),
                                                                     ("website_user_id", "c2")]]


def test_an_erased_person_is_not_created_again(store):
    with store.session() as session, session.begin():
        session.add(Suppression(identifier_hash=identifier_hash("email", "gone@example.com")))
    outcome = store.write(rec("shopify", ("email", "Gone@Example.com"), ("shopify_customer_id", "9"), at=0,
                              activities=[act("order.placed", "o-9", 0)]))
    assert store.people() == []
    assert len(outcome.suppressed) == 1


def test_an_email_change_moves_the_identity_and_keeps_the_person(store):
    store.write(rec("mailchimp", ("email", "old@example.com"), ("mailchimp_member_id", "m1"), at=0))
    person = store.profile_of("email", "old@example.com")
    store.write(rec("mailchimp", ("email", "new@example.com"), ("mailchimp_member_id", "m1"), at=1,
                    retired=[("email", "old@example.com")], traits={"email": "new@example.com"}))
    assert store.people() == [[("email", "new@example.com"), ("mailchimp_member_id", "m1")]]
    assert store.profile_of("email", "new@example.com") == person


def test_duplicate_activities_count_once_and_refunds_net_out(store):
    order = act("order.placed", "o-1", 0, amount="100.00", currency="EUR")
    yen = act("order.placed", "o-2", 1, amount="5000", currency="JPY")
    refund = act("order.refunded", "r-1", 2, amount="30.00", currency="EUR")
    solved = act("ticket.solved", "t-1:solved", 3, ticket_id="1", status="solved")
    opened = act("ticket.opened", "t-1:opened", 1, ticket_id="1", status="open")
    store.write(rec("shopify", ("email", "eu@example.com"), at=0, activities=[order, order]),
                rec("shopify", ("email", "eu@example.com"), at=1, activities=[yen]))
    store.write(rec("shopify", ("email", "eu@example.com"), at=2, activities=[refund, order]),
                rec("zendesk", ("email", "eu@example.com"), at=3, activities=[solved]))
    store.write(rec("zendesk", ("email", "eu@example.com"), at=1, activities=[opened]))
    person = store.profile_of("email", "eu@example.com")
    metrics = store.metrics(person)
    assert (metrics["orders_count"], metrics["total_spent"], metrics["open_tickets"]) == (
        2, {"EUR": "70.00", "JPY": "5000"}, 0)
    assert len(store.timeline(person)) == 5


def test_the_change_feed_tells_what_happened_in_order(store):
    from hub.models import Change

    store.write(rec("website", ("website_anonymous_id", "v1"), at=1, activities=[act("page.viewed", "pv", 1)]))
    store.write(rec("mailchimp", ("email", "fe@example.com"), at=0, traits={"first_name": "Fe"}))
    store.write(rec("website", ("website_anonymous_id", "v1"), ("email", "fe@example.com"), at=2))
    fe = store.profile_of("email", "fe@example.com")
    with store.session() as session:
        rows = [(c.type, c.profile_id, c.data) for c in session.scalars(select(Change).order_by(Change.id))]
    visitor = rows[0][1]
    assert rows == [
        ("profile.created", visitor, {}),
        ("profile.updated", visitor, {"fields": ["identities", "metrics", "timeline"]}),
        ("profile.created", fe, {}),
        ("profile.updated", fe, {"fields": ["identities", "traits.first_name"]}),
        ("profile.merged", fe, {"survivor_id": fe, "merged_id": visitor, "identifier_type": "website_anonymous_id"}),
    ]


def test_a_profile_without_activities_has_zero_metrics(store):
    store.write(rec("mailchimp", ("email", "zero@example.com"), at=0, traits={"first_name": "Zed"}))
    assert store.metrics(store.profile_of("email", "zero@example.com")) == {
        "orders_count": 0, "total_spent": {}, "currency": None, "last_order_at": None, "payments_count": 0,
        "total_paid": {}, "open_tickets": 0, "first_seen_at": None, "last_seen_at": None}


def test_page_views_and_email_events_stretch_first_and_last_seen_without_reading_the_timeline(store, db_engine):
    order = act("order.placed", "o-1", 5, amount="20.00", currency="EUR")
    store.write(rec("shopify", ("email", "seen@example.com"), at=5, activities=[order]))
    person = store.profile_of("email", "seen@example.com")
    timeline_reads = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT") and "FROM activities" in statement:
            timeline_reads.append(statement)

    event.listen(db_engine, "before_cursor_execute", record)
    try:
        store.write(rec("sendgrid", ("email", "seen@example.com"), at=9, activities=[act("email.opened", "e-1", 9)]),
                    rec("website", ("email", "seen@example.com"), at=2, activities=[act("page.viewed", "pv-1", 2)]))
        store.write(rec("website", ("email", "seen@example.com"), at=7,
                        activities=[act("page.viewed", "pv-2", 7), act("page.viewed", "pv-1", 1)]))
    finally:
        event.remove(db_engine, "before_cursor_execute", record)
    assert timeline_reads == []
    assert store.metrics(person) == {
        "orders_count": 1, "total_spent": {"EUR": "20.00"}, "currency": "EUR",
        "last_order_at": "2026-11-01T14:00:00+00:00", "payments_count": 0, "total_paid": {}, "open_tickets": 0,
        "first_seen_at": "2026-11-01T11:00:00+00:00", "last_seen_at": "2026-11-01T18:00:00+00:00"}
    assert len(store.timeline(person)) == 4  # pv-1 a second time, at another time, is the same activity


def test_a_refund_that_names_only_its_order_joins_the_buyer(store):
    from hub.profiles import UnknownSubject

    refund = rec("shopify", at=3, activities=[act("order.refunded", "rf-1", 3, amount="15.00", currency="USD")])
    refund.about = [("order.placed", "o-77")]
    with pytest.raises(UnknownSubject, match="no order.placed o-77 from shopify yet"):
        store.write(refund)  # the order is not there yet: the inbox row is retried later
    order = act("order.placed", "o-77", 1, amount="40.00", currency="USD")
    cancelled_order = act("order.placed", "o-78", 2, amount="99.00", currency="USD")
    store.write(rec("shopify", ("email", "buyer@example.com"), at=1, activities=[order, cancelled_order]),
                rec("shopify", ("email", "buyer@example.com"), at=2,
                    activities=[act("order.cancelled", "o-78", 2)]))
    store.write(refund)
    buyer = store.profile_of("email", "buyer@example.com")
    assert store.timeline(buyer)[0] == ("order.refunded", "shopify", "rf-1")
    metrics = store.metrics(buyer)
    assert (metrics["orders_count"], metrics["total_spent"]) == (2, {"USD": "25.00"})


def test_a_record_without_any_identifier_is_reported(store):
    outcome = store.write(rec("shopify", ("email", "null"), at=0, activities=[act("order.placed", "o-1", 0)]))
    assert store.people() == []
    assert [(ident, reason) for _, ident, reason in outcome.conflicts] == [(("", ""), "no identifier")]


def test_object_references_have_no_limit(store):
    orders = [("paypal_order_ref", f"ORD-{i}") for i in range(60)]
    store.write(rec("paypal", ("paypal_payer_id", "P1"), *orders[:30], at=0))
    store.write(rec("paypal", ("paypal_payer_id", "P1"), *orders[30:], at=1))
    store.write(rec("paypal", ("paypal_order_ref", "ORD-59"), ("paypal_capture_ref", "CAP-59"), at=2))
    assert store.people() == [sorted([("paypal_payer_id", "P1"), ("paypal_capture_ref", "CAP-59"), *orders])]


def test_an_identifier_seen_again_moves_its_last_seen_time_forward_only(store):
    store.write(rec("shopify", ("email", "seen@example.com"), at=1))
    store.write(rec("shopify", ("email", "seen@example.com"), at=5))
    store.write(rec("shopify", ("email", "seen@example.com"), at=3))
    with store.session() as session:
        ident = session.scalars(select(Identity)).one()
        assert (ident.first_seen_at, ident.last_seen_at) == (T0 + timedelta(hours=1), T0 + timedelta(hours=5))


@pytest.mark.postgres
@pytest.mark.parametrize("statement", ["holders", "profiles"])
def test_a_batch_reads_holders_and_profiles_by_one_index_probe_a_key(db_engine, statement):
    """With as many keys as a batch has, a table of a few thousand rows is cheaper, by the planner's
    costs, to hash or filter whole; the lookups stay index probes whatever the statistics say."""
    with db_engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO profiles (id, created_at, updated_at, metrics) SELECT 'p' || i, "
            "'2026-11-01 09:00+00', now(), '{}' FROM generate_series(1, 6000) AS i")
        connection.exec_driver_sql(
            "INSERT INTO identities (type, value, profile_id, source, first_seen_at, last_seen_at) "
            "SELECT 'email', 'u' || i || '@example.com', 'p' || i, 'shopify', now(), now() "
            "FROM generate_series(1, 6000) AS i")
        connection.exec_driver_sql("ANALYZE profiles, identities")
    keys = range(1, 6000, 3)
    if statement == "holders":
        sql, params = HOLDERS, {"types": array_literal("email" for _ in keys),
                                "values": array_literal(f"u{i}@example.com" for i in keys)}
        table, index = "identities", "uq_identities_type_value"
    else:
        sql, params = LOCKED_PROFILES, {"ids": array_literal(sorted(f"p{i}" for i in keys))}
        table, index = "profiles", "pk_profiles"
    with db_engine.begin() as connection:
        plan = "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {sql}"), params))
        found = connection.execute(sql, params).all()
    assert f"Index Scan using {index} on {table}" in plan and "Seq Scan" not in plan, plan
    assert len(found) == len(keys) == 2000
    if statement == "holders":
        assert sorted(found)[:2] == [("email", "u1000@example.com", "p1000"), ("email", "u1003@example.com", "p1003")]
    else:
        assert sorted(row.id for row in found)[:3] == ["p1", "p10", "p100"]
        assert (found[0].created_at, found[0].metrics) == (T0, {})
