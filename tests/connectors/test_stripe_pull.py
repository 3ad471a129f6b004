"""``hub sync stripe``: the object lists and the events, 100 a page by ``starting_after``.

``responses`` fakes the Stripe API in its documented shape (``{"object": "list", "data": [...],
"has_more": ...}``, newest first); the end-to-end tests then process the pulled records into
profiles and compare them with what the webhooks make of the same customers and payments.
"""
from __future__ import annotations

import json
from datetime import timezone
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import select

from connectors.stripe import amount_refunded_after, charge_outcome
from hub.models import InboxRecord
from hub.sync import NotSyncable, SyncError
from tests.conftest import profiles_snapshot as store
from tests.conftest import settle
from tests.connectors.test_stripe import SECRET, fixture_body, post
from tests.connectors.test_zendesk_pull import pulling
from tests.mappings.test_stripe import (CREATED, CUSTOMER_TIMELINE, HANAKO, HANAKO_IDENTITIES, INVOICE,
                                        JENNY, JENNY_IDENTITIES, JENNY_TRAITS, JPY_CHARGE, NO_MONEY,
                                        PAYMENT_TIMELINE, PLAN, UPDATED, partial_refund, payload)
from tests.test_sync import api, urls  # noqa: F401 (api is a fixture)

BASE = "https://api.stripe.com/v1"
KEY = "sk_test_51PqXk2eZvKYlo2C8vR3mT6wQ9zY4bN7cF1hJ5kL0pS2dG"
SETTINGS = {"enabled": True, "webhook_secret": SECRET, "api_key": KEY}
#: each list's own parameters after ``limit``
EXTRA = {"subscriptions": {"status": "all"}, "refunds": {"expand[]": "data.charge.refunds"}}
LI = "cus_QgZ1Ab2Cd3Ef4G"
INVOICE_CHARGE = "ch_3PqY1A2eZvKYlo2C0i1n2v3c"


def listing(path: str, since: int | None = None, after: str | None = None) -> str:
    """A list call: 100 a page, the list's own filters, ``created[gte]`` on later runs, then the cursor."""
    if path.startswith("events."):
        query = {"type": path.removeprefix("events."), "limit": 100}
        path = "events"
    else:
        query = {"limit": 100, **EXTRA.get(path, {})}
    query.update({"created[gte]": since} if since is not None else {})
    query.update({"starting_after": after} if after else {})
    return f"{BASE}/{path}?{urlencode(query)}"


def page(name: str) -> dict:
    """A recorded list page (``tests/fixtures/stripe/<name>.json``)."""
    return json.loads(fixture_body(name))


def events(*names: str) -> dict:
    """The last page of ``GET /v1/events``: these webhook fixtures, exactly as the webhooks sent them."""
    return {"object": "list", "data": [payload(name) for name in names], "has_more": False, "url": "/v1/events"}


def serve(api, stream: str, *names: str, since: int | None = None) -> None:
    """Serve pages: each next one ``starting_after`` the last record of the one before."""
    after = None
    for name in names:
        api.get(listing(stream, since, after), json=page(name))
        after = page(name)["data"][-1]["id"]


@pytest.fixture
def pull(make_app):
    return pulling(make_app, "stripe", SETTINGS)


@pytest.fixture
def hub(make_app):
    return pulling(make_app, "stripe", SETTINGS, process=True)


# -- the API calls ---------------------------------------------------------------------------

def test_a_list_is_walked_with_starting_after_while_has_more(pull, api):
    serve(api, "customers", "pull_customers_1", "pull_customers_2")
    assert pull.run("customers") == {"customers": 3}
    assert urls(api) == [f"{BASE}/customers?limit=100", f"{BASE}/customers?limit=100&starting_after={JENNY}"]
    assert [(call.request.headers["Authorization"], call.request.headers["Stripe-Version"])
            for call in api.calls] == [(f"Bearer {KEY}", "2024-06-20")] * 2
    assert pull.keys() == [f"pull:customers:{HANAKO}:1724180800", f"pull:customers:{JENNY}:1724180000",
                           f"pull:customers:{LI}:1724100000"]
    assert pull.topics() == ["api:customer"] * 3
    assert json.loads(rows(pull.app)[1].body) == page("pull_customers_1")["data"][1]
    assert (pull.state("customers"), pull.sleeps) == ({"cursor": 1724180800}, [])


def test_every_list_and_event_type_is_a_stream_of_its_own(pull, api):
    names = ["customers", "charges", "invoices", "subscriptions", "refunds", "events.customer.updated",
             "events.charge.succeeded", "events.charge.failed", "events.invoice.paid",
             "events.invoice.payment_failed", "events.customer.subscription.deleted"]
    for name in names:
        api.get(listing(name), json={"object": "list", "data": [], "has_more": False, "url": "/v1/x"})
    assert pull.run() == dict.fromkeys(names, 0)
    assert urls(api) == [
        f"{BASE}/customers?limit=100", f"{BASE}/charges?limit=100", f"{BASE}/invoices?limit=100",
        f"{BASE}/subscriptions?limit=100&status=all", f"{BASE}/refunds?limit=100&expand%5B%5D=data.charge.refunds",
        f"{BASE}/events?type=customer.updated&limit=100", f"{BASE}/events?type=charge.succeeded&limit=100",
        f"{BASE}/events?type=charge.failed&limit=100", f"{BASE}/events?type=invoice.paid&limit=100",
        f"{BASE}/events?type=invoice.payment_failed&limit=100",
        f"{BASE}/events?type=customer.subscription.deleted&limit=100"]


def test_the_next_run_asks_for_what_was_created_since_the_newest_seen(pull, api):
    serve(api, "customers", "pull_customers_1", "pull_customers_2")
    assert pull.run("customers") == {"customers": 3}
    hanako = page("pull_customers_1")["data"][0]
    newcomer = dict(page("pull_customers_2")["data"][0], id="cus_QiB3Cd4Ef5Gh6I", created=1724190000)
    api.get(listing("customers", since=1724180800),
            json={"object": "list", "data": [newcomer, hanako], "has_more": False, "url": "/v1/customers"})
    assert pull.run("customers") == {"customers": 1}  # Hanako comes again (created[gte]): stored once
    assert urls(api)[2:] == [f"{BASE}/customers?limit=100&created%5Bgte%5D=1724180800"]
    assert pull.keys()[3:] == ["pull:customers:cus_QiB3Cd4Ef5Gh6I:1724190000"]
    assert pull.state("customers") == {"cursor": 1724190000}


def test_429_waits_for_retry_after_and_a_500_is_retried(pull, api):
    api.get(listing("charges"), status=429, headers={"Retry-After": "3"},
            json={"error": {"message": "Too many requests", "type": "invalid_request_error", "code": "rate_limit"}})
    api.get(listing("charges"), status=500, json={"error": {"type": "api_error"}})
    serve(api, "charges", "pull_charges_1", "pull_charges_2")
    assert pull.run("charges") == {"charges": 4}
    assert pull.sleeps == [3.0, 1.0]  # Retry-After, then backoff 0.5 * 2
    assert pull.topics() == ["api:charge"] * 4


def test_a_run_cut_after_page_one_resumes_at_page_two(pull, api):
    api.get(listing("customers"), json=page("pull_customers_1"))
    api.get(listing("customers", after=JENNY), body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run("customers", retries=0)
    assert raised.value.errors == {"customers": f"GET {BASE}/customers failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"customers": 2}
    assert pull.state("customers") == {"cursor": 1724180800, "started_cursor": None, "next": {
        "url": f"{BASE}/customers", "params": {"limit": 100, "starting_after": JENNY}}}
    api.reset()
    api.get(listing("customers", after=JENNY), json=page("pull_customers_2"))
    assert pull.run("customers") == {"customers": 1}
    assert urls(api) == [f"{BASE}/customers?limit=100&starting_after={JENNY}"]
    assert len(pull.keys()) == len(set(pull.keys())) == 3
    assert pull.state("customers") == {"cursor": 1724180800}


def test_a_refused_key_stops_the_stream_without_showing_it(pull, api):
    api.get(listing("customers"), status=401, json={"error": {
        "message": "Invalid API Key provided: sk_test_********************************2dG",
        "type": "invalid_request_error"}})
    with pytest.raises(SyncError) as raised:
        pull.run("customers")
    assert raised.value.errors == {"customers": f"GET {BASE}/customers answered 401 Unauthorized"}
    assert KEY not in str(raised.value)
    assert (pull.keys(), pull.sleeps) == ([], [])


def test_a_missing_key_is_named_before_any_call(make_app, api):
    with pytest.raises(NotSyncable) as raised:
        pulling(make_app, "stripe", {"enabled": True, "webhook_secret": SECRET}).run()
    assert str(raised.value) == ("connector 'stripe' needs api_key (a secret or restricted key) in its "
                                 "configuration to pull from the Stripe API")


def test_the_api_base_is_stripes_unless_overridden(pull):
    connector = pull.hub.connector("stripe")[0]
    assert connector.api_base(SETTINGS) == BASE
    assert connector.api_base({**SETTINGS, "api_base": "http://127.0.0.1:12111/v1"}) == "http://127.0.0.1:12111/v1"


def refund(refund_id: str, amount: int, status: str = "succeeded") -> dict:
    return {"id": refund_id, "amount": amount, "status": status}


def test_a_refund_total_is_the_charges_less_the_later_refunds_that_count():
    """``amount_refunded`` just after each refund, from the charge's newest refunds (newest first)."""
    listed = [refund("re_3", 1000), refund("re_2", 700, "failed"), refund("re_1", 500, "pending")]
    charge = {"amount_refunded": 1500, "refunds": {"data": listed}}
    assert [amount_refunded_after(r, charge) for r in listed] == [1500, None, 500]
    assert amount_refunded_after(refund("re_0", 200), charge) is None  # older than the listed ones
    assert amount_refunded_after(refund("re_3", 1000, "canceled"), charge) is None


@pytest.mark.parametrize("status, invoice, outcome", [
    ("succeeded", None, "paid"), ("succeeded", INVOICE, "paid_by_invoice"), ("failed", None, "failed"),
    ("pending", None, None)])
def test_a_pulled_charge_stands_for_the_webhook_of_its_status(status, invoice, outcome):
    assert charge_outcome({"status": status, "invoice": invoice}) == outcome


# -- end to end: pulled records in profiles -----------------------------------------------------

def rows(app) -> list[InboxRecord]:
    with app.extensions["tributary"].session() as session:
        return list(session.scalars(select(InboxRecord).order_by(InboxRecord.id)))


def pulled_at(app, customer: str) -> str:
    """When the customers list gave this customer: its traits are observed then."""
    [row] = [row for row in rows(app) if row.key.startswith(f"pull:customers:{customer}:")]
    return row.received_at.astimezone(timezone.utc).isoformat()


def deliver(app, *names: str) -> None:
    """Post webhook fixtures (names or bodies), signed, and process them."""
    for name in names:
        body = fixture_body(name) if isinstance(name, str) else name
        assert post(app.test_client(), body).status_code == 202
    settle(app)


def seen(traits: dict, observed: str) -> dict:
    return {name: (value, source, observed) for name, (value, source, _) in traits.items()}


HANAKO_CREATED = "2024-08-20T19:06:40+00:00"
HANAKO_TRAITS = {"email": "hanako.yamada@example.jp", "phone": "+81312345678", "name": "山田 花子",
                 "locale": "ja-JP", "address": {"line1": "1-2-3 Jingumae", "line2": None, "city": "Shibuya-ku",
                                                "region": "Tokyo", "postal_code": "150-0001", "country": "JP"}}
LI_CREATED = "2024-08-19T20:40:00+00:00"


def test_pulled_customers_are_profiles_created_like_the_webhooks_say(hub, api, db_engine):
    """Traits as of the pull; the one activity is the customer.created a webhook would give."""
    serve(api, "customers", "pull_customers_1", "pull_customers_2")
    hub.run("customers")
    settle(hub.app)
    jenny_at, hanako_at, li_at = (pulled_at(hub.app, c) for c in (JENNY, HANAKO, LI))
    jenny = {"identities": JENNY_IDENTITIES, "traits": seen(JENNY_TRAITS, jenny_at),
             "timeline": [CUSTOMER_TIMELINE[0]], "metrics": {**NO_MONEY, "first_seen_at": CREATED,
                                                             "last_seen_at": CREATED}}
    li = {"identities": [("email", "li.wei@example.com", "stripe"), ("stripe_customer_id", LI, "stripe")],
          "traits": {"email": ("li.wei@example.com", "stripe", li_at), "name": ("Li Wei", "stripe", li_at)},
          "timeline": [("customer.created", "stripe", LI, LI_CREATED, {})],
          "metrics": {**NO_MONEY, "first_seen_at": LI_CREATED, "last_seen_at": LI_CREATED}}
    hanako = {"identities": HANAKO_IDENTITIES,
              "traits": {name: (value, "stripe", hanako_at) for name, value in HANAKO_TRAITS.items()},
              "timeline": [("customer.created", "stripe", HANAKO, HANAKO_CREATED, {})],
              "metrics": {**NO_MONEY, "first_seen_at": HANAKO_CREATED, "last_seen_at": HANAKO_CREATED}}
    assert store(db_engine) == sorted([jenny, li, hanako], key=repr)

    deliver(hub.app, "customer_created", "customer_updated")  # older than the pull: traits stay
    jenny.update(timeline=CUSTOMER_TIMELINE, metrics={**NO_MONEY, "first_seen_at": CREATED, "last_seen_at": UPDATED})
    assert store(db_engine) == sorted([jenny, li, hanako], key=repr)


#: the subscription's start as the pull sees it: with today's status
STARTED_TODAY = ("subscription.started", "stripe", PLAN["subscription_id"], "2024-08-20T18:56:30+00:00",
                 {**PLAN, "status": "canceled"})
BY_INVOICE = ("payment.succeeded", "stripe", INVOICE_CHARGE, "2024-08-20T18:56:34+00:00", {
    "charge_id": INVOICE_CHARGE, "invoice_id": INVOICE, "payment_intent": "pi_3PqY1A2eZvKYlo2C0z9x8c7v",
    "description": "Subscription creation"})
YEN_PAID_AT = "2024-08-20T19:08:20+00:00"
YEN_PAID = ("payment.succeeded", "stripe", JPY_CHARGE, YEN_PAID_AT, {
    "charge_id": JPY_CHARGE, "amount": "5000", "currency": "JPY", "payment_intent": "pi_3PqY3D2eZvKYlo2C4i5n6t7e",
    "description": "注文 1003"})
WEBHOOKS = ["charge_succeeded", "invoice_paid", "customer_subscription_created", "charge_failed",
            "invoice_payment_failed", "customer_subscription_deleted"]


def pull_payments(hub, api) -> None:
    serve(api, "charges", "pull_charges_1", "pull_charges_2")
    serve(api, "invoices", "pull_invoices_1")
    serve(api, "subscriptions", "pull_subscriptions_1")
    for stream in ("charges", "invoices", "subscriptions"):
        hub.run(stream)
    settle(hub.app)


def jenny_payments(timeline: list) -> dict:
    return {"identities": [("email", "jenny.rosen@example.com", "stripe"), ("stripe_customer_id", JENNY, "stripe")],
            "traits": {}, "timeline": sorted(timeline, key=repr),
            "metrics": {**NO_MONEY, "payments_count": 2, "total_paid": {"USD": "40.00"},
                        "first_seen_at": "2024-08-20T18:54:59+00:00", "last_seen_at": "2024-09-22T10:13:20+00:00"}}


HANAKO_PAID = {"identities": [("email", "hanako.yamada@example.jp", "stripe"), ("phone", "+81312345678", "stripe"),
                              ("stripe_customer_id", HANAKO, "stripe")],
               "traits": {}, "timeline": [YEN_PAID],
               "metrics": {**NO_MONEY, "payments_count": 1, "total_paid": {"JPY": "5000"},
                           "first_seen_at": YEN_PAID_AT, "last_seen_at": YEN_PAID_AT}}


def test_pulled_charges_invoices_and_subscriptions_are_the_webhooks_activities(hub, api, db_engine):
    """Each object gives the activity of the webhook its state stands for, with its exact money;
    an open invoice gives none (its failed attempts are events), a pending charge neither."""
    pull_payments(hub, api)
    [invoice_paid, _, failed, succeeded, cancelled, _] = PAYMENT_TIMELINE
    pulled = [succeeded, BY_INVOICE, failed, invoice_paid, STARTED_TODAY, cancelled]
    assert store(db_engine) == sorted([jenny_payments(pulled), HANAKO_PAID], key=repr)


@pytest.mark.parametrize("webhooks_first", [True, False])
def test_a_payment_seen_by_webhook_and_by_pull_is_one_activity(hub, api, db_engine, webhooks_first):
    """Same ids either way: nothing counts twice. The subscription's start keeps the status of
    whichever came first (the pull sees today's)."""
    if webhooks_first:
        deliver(hub.app, *WEBHOOKS)
    pull_payments(hub, api)
    if not webhooks_first:
        deliver(hub.app, *WEBHOOKS)
    timeline = [*PAYMENT_TIMELINE[:5], PAYMENT_TIMELINE[5] if webhooks_first else STARTED_TODAY, BY_INVOICE]
    assert store(db_engine) == sorted([jenny_payments(timeline), HANAKO_PAID], key=repr)


FIRST_REFUND = ("payment.refunded", "stripe", f"{JPY_CHARGE}:1500", "2024-08-20T19:26:40+00:00", {
    "charge_id": JPY_CHARGE, "refund_id": "re_3PqY4E2eZvKYlo2Cp1a2r3t4", "amount": "1500",
    "amount_refunded": "1500", "currency": "JPY", "reason": "requested_by_customer"})
SECOND_REFUND = ("payment.refunded", "stripe", f"{JPY_CHARGE}:5000", "2024-08-20T19:43:20+00:00", {
    "charge_id": JPY_CHARGE, "refund_id": "re_3PqY5F2eZvKYlo2Cp5a6r7t8", "amount": "3500",
    "amount_refunded": "5000", "currency": "JPY", "reason": "requested_by_customer"})


@pytest.mark.parametrize("webhooks_first", [True, False])
def test_pulled_refunds_are_the_charge_refunded_webhooks_activities(hub, api, db_engine, webhooks_first):
    """Two partial refunds and a failed one between them: each counts what it returned, once,
    with the id the charge.refunded webhook gives; the failed one returned nothing."""
    webhooks = [partial_refund("evt_3PqY4E2eZvKYlo2Cp1r2t3a4", "re_3PqY4E2eZvKYlo2Cp1a2r3t4", 1724182000, 1500, 0),
                partial_refund("evt_3PqY5F2eZvKYlo2Cp5r6t7b8", "re_3PqY5F2eZvKYlo2Cp5a6r7t8", 1724183000, 3500, 1500)]
    if webhooks_first:
        deliver(hub.app, *webhooks)
    serve(api, "charges", "pull_charges_1", "pull_charges_2")
    serve(api, "refunds", "pull_refunds_1")
    assert hub.run("refunds") == {"refunds": 3}
    hub.run("charges")
    settle(hub.app)
    if not webhooks_first:
        deliver(hub.app, *webhooks)
    [hanako] = [person for person in store(db_engine)
                if ("stripe_customer_id", HANAKO, "stripe") in person["identities"]]
    assert hanako == {**HANAKO_PAID, "timeline": [FIRST_REFUND, SECOND_REFUND, YEN_PAID], "metrics": {
        **HANAKO_PAID["metrics"], "total_paid": {"JPY": "0"}, "last_seen_at": "2024-08-20T19:43:20+00:00"}}


def test_pulled_events_are_the_webhooks_themselves(hub, api, db_engine):
    """A pulled event is processed exactly as its webhook: the same event id, the same activity."""
    api.get(listing("events.customer.updated"), json=events("customer_updated"))
    api.get(listing("events.invoice.payment_failed"), json=events("invoice_payment_failed"))
    assert hub.run("events.customer.updated") == {"events.customer.updated": 1}
    assert hub.run("events.invoice.payment_failed") == {"events.invoice.payment_failed": 1}
    assert hub.keys() == ["pull:events.customer.updated:evt_1PqXzA2eZvKYlo2Cu7p8d9a0:1724180050",
                          "pull:events.invoice.payment_failed:evt_1PrA5F2eZvKYlo2Cf4i5l6e7:1726858700"]
    assert hub.topics() == ["customer.updated", "invoice.payment_failed"]
    settle(hub.app)
    expected = [{"identities": JENNY_IDENTITIES, "traits": JENNY_TRAITS,
                 "timeline": sorted([CUSTOMER_TIMELINE[1], PAYMENT_TIMELINE[1]], key=repr),
                 "metrics": {**NO_MONEY, "first_seen_at": UPDATED, "last_seen_at": "2024-09-20T18:58:20+00:00"}}]
    assert store(db_engine) == expected
    deliver(hub.app, "customer_updated", "invoice_payment_failed")
    assert store(db_engine) == expected
    assert hub.state("events.customer.updated") == {"cursor": 1724180050}

