"""``mappings/stripe.yaml`` end to end: signed Stripe events in, the exact profile store out."""
import json

import pytest

from hub.rebuild import rebuild
from tests.conftest import profiles_snapshot as store
from tests.conftest import settle
from tests.connectors.test_stripe import FIXTURES, SECRET, fixture_body, post

JENNY = "cus_QhK9Xy1bC2d3E4"
HANAKO = "cus_QhLj8Kp2Zr4Ym6"
CREATED = "2024-08-20T18:53:20+00:00"
UPDATED = "2024-08-20T18:54:10+00:00"
NO_MONEY = {"orders_count": 0, "total_spent": {}, "currency": None, "last_order_at": None,
            "payments_count": 0, "total_paid": {}, "open_tickets": 0}
JENNY_IDENTITIES = [("email", "jenny.rosen@example.com", "stripe"), ("phone", "+14155550123", "stripe"),
                    ("stripe_customer_id", JENNY, "stripe")]
JENNY_TRAITS = {
    "email": ("jenny.rosen@example.com", "stripe", UPDATED), "phone": ("+14155550123", "stripe", UPDATED),
    "name": ("Jenny Rosen", "stripe", UPDATED),
    "address": ({"line1": "510 Townsend St", "line2": None, "city": "San Francisco", "region": "CA",
                 "postal_code": "94103", "country": "US"}, "stripe", UPDATED),
}
CUSTOMER_TIMELINE = [("customer.created", "stripe", JENNY, CREATED, {}),
                     ("customer.updated", "stripe", "evt_1PqXzA2eZvKYlo2Cu7p8d9a0", UPDATED, {})]
JENNY_PROFILE = {"identities": JENNY_IDENTITIES, "traits": JENNY_TRAITS, "timeline": CUSTOMER_TIMELINE,
                 "metrics": {**NO_MONEY, "first_seen_at": CREATED, "last_seen_at": UPDATED}}

CHARGE = "ch_3PqY0A2eZvKYlo2C1a2b3c4d"
FAILED_CHARGE = "ch_3PqY2C2eZvKYlo2C0d9e8c7b"
JPY_CHARGE = "ch_3PqY3D2eZvKYlo2C4j5p6y7n"
INVOICE = "in_1PqY1A2eZvKYlo2Cz1x2c3v4"
SUBSCRIPTION = "sub_1PqY1A2eZvKYlo2Cq1w2e3r4"
PLAN = {"subscription_id": SUBSCRIPTION, "price_id": "price_1PqXwW2eZvKYlo2Cpr0pl4n1",
        "product_id": "prod_QhK7Pr0Plan001", "plan": "Pro monthly", "interval": "month", "quantity": 1,
        "amount": "20.00", "currency": "USD"}
PAYMENT_TIMELINE = [
    ("invoice.paid", "stripe", INVOICE, "2024-08-20T18:56:35+00:00", {
        "invoice_id": INVOICE, "invoice_number": "A1B2C3D4-0001", "amount": "20.00", "currency": "USD",
        "subscription_id": SUBSCRIPTION, "billing_reason": "subscription_create"}),
    ("invoice.payment_failed", "stripe", "evt_1PrA5F2eZvKYlo2Cf4i5l6e7", "2024-09-20T18:58:20+00:00", {
        "invoice_id": "in_1PrA5E2eZvKYlo2Cr3n4w5a6", "invoice_number": "A1B2C3D4-0002", "amount": "20.00",
        "currency": "USD", "subscription_id": SUBSCRIPTION, "billing_reason": "subscription_cycle",
        "attempt_count": 1, "next_payment_attempt": "2024-09-22T18:58:20+00:00"}),
    ("payment.failed", "stripe", FAILED_CHARGE, "2024-08-20T18:58:19+00:00", {
        "charge_id": FAILED_CHARGE, "amount": "45.00", "currency": "USD",
        "payment_intent": "pi_3PqY2C2eZvKYlo2C0p9o8i7u", "description": "Order 1002",
        "failure_code": "card_declined", "failure_message": "Your card has insufficient funds."}),
    ("payment.succeeded", "stripe", CHARGE, "2024-08-20T18:54:59+00:00", {
        "charge_id": CHARGE, "amount": "20.00", "currency": "USD", "payment_intent": "pi_3PqY0A2eZvKYlo2C1q2w3e4r",
        "description": "Order 1001"}),
    ("subscription.cancelled", "stripe", SUBSCRIPTION, "2024-09-22T10:13:20+00:00", {
        **PLAN, "status": "canceled", "reason": "cancellation_requested", "feedback": "too_expensive"}),
    ("subscription.started", "stripe", SUBSCRIPTION, "2024-08-20T18:56:30+00:00",
     {**PLAN, "status": "incomplete"}),
]
HANAKO_IDENTITIES = [("email", "hanako.yamada@example.jp", "stripe"), ("phone", "+81312345678", "stripe"),
                     ("stripe_customer_id", HANAKO, "stripe")]
REFUNDED_AT = "2024-08-20T19:10:00+00:00"


@pytest.fixture
def app(make_app):
    """A hub with only Stripe enabled, draining in-process as a newcomer's hub does."""
    return make_app(connectors={"echo": {"enabled": False},
                                "stripe": {"enabled": True, "webhook_secret": SECRET}},
                    inbox={"max_attempts": 1})


def payload(name: str) -> dict:
    """A fixture as a dict, to derive variants from."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def body_of(event: dict) -> bytes:
    """An event as Stripe sends it: indented JSON, UTF-8."""
    return json.dumps(event, indent=2, ensure_ascii=False).encode()




def deliver(app, body: bytes | str, expected: int = 202) -> None:
    """Post one signed event (a fixture name or bytes), then wait until the hub has processed it."""
    body = fixture_body(body) if isinstance(body, str) else body
    response = post(app.test_client(), body)
    assert response.status_code == expected, response.get_json()
    settle(app)




@pytest.mark.parametrize("order", ["in order", "update first"])
def test_a_customer_created_and_updated_is_one_profile_with_the_newest_traits(app, db_engine, order):
    """The late customer.created (an older event) leaves the update's traits in place."""
    fixtures = ["customer_created", "customer_updated"]
    for fixture in (fixtures if order == "in order" else fixtures[::-1]):
        deliver(app, fixture)
    assert store(db_engine) == [JENNY_PROFILE]


def test_a_redelivery_changes_nothing_and_a_rebuild_gives_the_same_store(app, db_engine):
    for fixture in ("customer_created", "customer_updated", "charge_succeeded"):
        deliver(app, fixture)
    before = store(db_engine)
    deliver(app, "customer_updated", expected=200)  # Stripe retries with the same event id
    deliver(app, "charge_succeeded", expected=200)
    assert store(db_engine) == before
    with app.app_context():
        assert rebuild(app.extensions["tributary"]) == 3
    assert store(db_engine) == before
    assert before[0]["metrics"]["total_paid"] == {"USD": "20.00"}


def test_every_event_of_a_customer_lands_on_one_profile_with_exact_money(app, db_engine):
    """Charges, invoices and subscriptions name the customer by id (and the payer's email)."""
    for fixture in ("charge_succeeded", "invoice_paid", "customer_subscription_created", "charge_failed",
                    "customer_updated", "customer_created", "invoice_payment_failed",
                    "customer_subscription_deleted"):
        deliver(app, fixture)
    assert store(db_engine) == [{
        "identities": JENNY_IDENTITIES,
        "traits": JENNY_TRAITS,  # only the customer object sets traits
        "timeline": sorted(CUSTOMER_TIMELINE + PAYMENT_TIMELINE, key=repr),
        # a failed charge and a failed invoice are not payments; the charge and the invoice are
        "metrics": {**NO_MONEY, "payments_count": 2, "total_paid": {"USD": "40.00"}, "first_seen_at": CREATED,
                    "last_seen_at": "2024-09-22T10:13:20+00:00"},
    }]


def test_a_yen_refund_is_exact_without_minor_units(app, db_engine):
    """JPY has no minor unit: 5000 in the event is ¥5000, and it nets the charge out."""
    deliver(app, "charge_refunded_jpy")
    refund = ("payment.refunded", "stripe", f"{JPY_CHARGE}:5000", REFUNDED_AT, {
        "charge_id": JPY_CHARGE, "refund_id": "re_3PqY3D2eZvKYlo2C4r3f2d1s", "amount": "5000",
        "amount_refunded": "5000", "currency": "JPY", "reason": "requested_by_customer"})
    assert store(db_engine) == [{
        "identities": HANAKO_IDENTITIES, "traits": {}, "timeline": [refund],
        "metrics": {**NO_MONEY, "total_paid": {"JPY": "-5000"}, "first_seen_at": REFUNDED_AT,
                    "last_seen_at": REFUNDED_AT},
    }]
    succeeded = payload("charge_refunded_jpy")
    succeeded.update(id="evt_3PqY3C2eZvKYlo2C0s1u2c3c", type="charge.succeeded", created=1724180901)
    charge = succeeded["data"]["object"]
    charge.update(amount_refunded=0, refunded=False)
    del charge["refunds"], succeeded["data"]["previous_attributes"]
    deliver(app, body_of(succeeded))
    paid_at = "2024-08-20T19:08:20+00:00"
    [hanako] = store(db_engine)
    assert hanako["timeline"] == [
        refund,
        ("payment.succeeded", "stripe", JPY_CHARGE, paid_at, {
            "charge_id": JPY_CHARGE, "amount": "5000", "currency": "JPY",
            "payment_intent": "pi_3PqY3D2eZvKYlo2C4i5n6t7e", "description": "注文 1003"}),
    ]
    assert hanako["metrics"] == {**NO_MONEY, "payments_count": 1, "total_paid": {"JPY": "0"},
                                 "first_seen_at": paid_at, "last_seen_at": REFUNDED_AT}


def partial_refund(event_id: str, refund_id: str, created: int, amount: int, before: int) -> bytes:
    """The JPY charge.refunded fixture for one partial refund of ``amount`` after ``before`` refunded."""
    event = payload("charge_refunded_jpy")
    event.update(id=event_id, created=created)
    charge = event["data"]["object"]
    charge.update(amount_refunded=before + amount, refunded=before + amount == charge["amount"])
    charge["refunds"]["data"] = [dict(charge["refunds"]["data"][0], id=refund_id, amount=amount, created=created)]
    event["data"]["previous_attributes"] = {"amount_refunded": before}
    return body_of(event)


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_partial_refunds_count_what_each_returned_not_the_running_total(app, db_engine, order):
    """``amount_refunded`` grows with each refund: each event counts its own part, once."""
    first = partial_refund("evt_3PqY4E2eZvKYlo2Cp1r2t3a4", "re_3PqY4E2eZvKYlo2Cp1a2r3t4", 1724182000, 1500, 0)
    second = partial_refund("evt_3PqY5F2eZvKYlo2Cp5r6t7b8", "re_3PqY5F2eZvKYlo2Cp5a6r7t8", 1724183000, 3500, 1500)
    for body in ([first, second] if order == "in order" else [second, first]):
        deliver(app, body)
    deliver(app, first, expected=200)
    [hanako] = store(db_engine)
    assert [(entry[2], entry[4]["refund_id"], entry[4]["amount"], entry[4]["amount_refunded"])
            for entry in hanako["timeline"]] == [
        (f"{JPY_CHARGE}:1500", "re_3PqY4E2eZvKYlo2Cp1a2r3t4", "1500", "1500"),
        (f"{JPY_CHARGE}:5000", "re_3PqY5F2eZvKYlo2Cp5a6r7t8", "3500", "5000"),
    ]
    assert hanako["metrics"]["total_paid"] == {"JPY": "-5000"}


def test_an_invoice_charge_is_counted_once_by_its_invoice(app, db_engine):
    """A subscription payment sends charge.succeeded and invoice.paid: the money counts once."""
    charge = payload("charge_succeeded")
    charge["id"] = "evt_3PqY1A2eZvKYlo2C7i8n9v0c"
    charge["data"]["object"].update(id="ch_3PqY1A2eZvKYlo2C0i1n2v3c", invoice=INVOICE, created=1724180194,
                                    description="Subscription creation",
                                    payment_intent="pi_3PqY1A2eZvKYlo2C0z9x8c7v")
    deliver(app, body_of(charge))
    deliver(app, "invoice_paid")
    [jenny] = store(db_engine)
    assert jenny["timeline"] == [
        PAYMENT_TIMELINE[0],
        ("payment.succeeded", "stripe", "ch_3PqY1A2eZvKYlo2C0i1n2v3c", "2024-08-20T18:56:34+00:00", {
            "charge_id": "ch_3PqY1A2eZvKYlo2C0i1n2v3c", "invoice_id": INVOICE,
            "payment_intent": "pi_3PqY1A2eZvKYlo2C0z9x8c7v", "description": "Subscription creation"}),
    ]
    assert (jenny["metrics"]["payments_count"], jenny["metrics"]["total_paid"]) == (1, {"USD": "20.00"})


def test_events_the_mapping_does_not_name_are_processed_without_a_profile(app, db_engine):
    intent = payload("charge_succeeded")
    intent.update(id="evt_3PqY0B2eZvKYlo2C9p8i7n6t", type="payment_intent.created")
    deliver(app, body_of(intent))
    assert store(db_engine) == []
