"""``mappings/paypal.yaml`` end to end: signed PayPal events in, the exact profile store out.

Only orders name the buyer; captures reach the buyer through the order id and refunds through
the capture id, whichever arrives first.
"""
import json

import pytest

from hub.rebuild import rebuild
from tests.connectors.test_paypal import (  # noqa: F401  (pytest fixtures used by name)
    FIXTURES, WEBHOOK_ID, fixture_body, fresh_certificate_cache, paypal_api, paypal_headers, post)
from tests.mappings.test_stripe import settle, store

ORDER = "5O190127TN364715T"
CAPTURE = "8MC585209K746392H"
REFUND = "1JU08902781691411"
APPROVED = "2024-05-01T11:59:47+00:00"
CAPTURED = "2024-05-01T12:00:02+00:00"
REFUNDED = "2024-05-03T09:15:38+00:00"
BUYER = [("email", "buyer@example.com", "paypal"), ("paypal_payer_id", "QYR5Z8XDVJNXQ", "paypal")]
REFS = [("paypal_capture_ref", CAPTURE, "paypal"), ("paypal_order_ref", ORDER, "paypal")]
ORDER_PROPERTIES = {"order_id": ORDER, "amount": "20.00", "currency": "USD", "invoice_id": "INV-1001",
                    "custom_id": "order-1001"}
PLACED = ("order.placed", "paypal", ORDER, APPROVED, {**ORDER_PROPERTIES, "line_items_count": 1})
PAID = ("order.paid", "paypal", ORDER, CAPTURED, {**ORDER_PROPERTIES, "capture_id": CAPTURE})
SUCCEEDED = ("payment.succeeded", "paypal", CAPTURE, CAPTURED, {
    "capture_id": CAPTURE, "order_id": ORDER, "amount": "20.00", "currency": "USD", "invoice_id": "INV-1001",
    "custom_id": "order-1001"})
REFUNDED_ACTIVITY = ("payment.refunded", "paypal", REFUND, REFUNDED, {
    "refund_id": REFUND, "capture_id": CAPTURE, "amount": "20.00", "currency": "USD", "invoice_id": "INV-1001",
    "custom_id": "order-1001", "reason": "Item out of stock"})


def buyer_traits(observed: str, first_name: str = "John") -> dict:
    """The order payer's traits, all observed at the order's ``update_time``."""
    return {"email": ("buyer@example.com", "paypal", observed), "first_name": (first_name, "paypal", observed),
            "last_name": ("Doe", "paypal", observed), "country": ("US", "paypal", observed)}


def money(**metrics) -> dict:
    """Profile metrics: nothing, except what is given."""
    return {"orders_count": 0, "total_spent": {}, "currency": None, "last_order_at": None, "payments_count": 0,
            "total_paid": {}, "open_tickets": 0, **metrics}


@pytest.fixture
def app(make_app, paypal_api):
    """A hub with only PayPal enabled (its certificate served locally), draining in-process."""
    return make_app(connectors={"echo": {"enabled": False},
                                "paypal": {"enabled": True, "webhook_id": WEBHOOK_ID}},
                    inbox={"max_attempts": 1})


def payload(name: str) -> dict:
    """A fixture as a dict, to derive variants from."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def body_of(event: dict) -> bytes:
    """An event as PayPal sends it: compact JSON."""
    return json.dumps(event, separators=(",", ":")).encode()


def deliver(app, body: bytes | str, expected: int = 202) -> None:
    """Post one signed event (a fixture name or bytes), then wait until the hub has processed it."""
    body = fixture_body(body) if isinstance(body, str) else body
    response = post(app.test_client(), body, paypal_headers(body))
    assert response.status_code == expected, response.get_json()
    settle(app)


@pytest.mark.parametrize("order", ["order first", "capture first"])
def test_an_approved_order_and_its_capture_are_one_buyer(app, db_engine, order):
    """The capture names only its order: it joins the payer whether it comes before or after."""
    fixtures = ["checkout_order_approved", "payment_capture_completed"]
    for fixture in (fixtures if order == "order first" else fixtures[::-1]):
        deliver(app, fixture)
    assert store(db_engine) == [{
        "identities": sorted(BUYER + REFS),
        "traits": buyer_traits(APPROVED),
        "timeline": [PLACED, SUCCEEDED],
        "metrics": money(orders_count=1, total_spent={"USD": "20.00"}, currency="USD", last_order_at=APPROVED,
                         payments_count=1, total_paid={"USD": "20.00"}, first_seen_at=APPROVED,
                         last_seen_at=CAPTURED),
    }]


@pytest.mark.parametrize("order", ["as sent", "reversed"])
def test_an_order_from_approval_to_refund_is_one_buyer_with_exact_money(app, db_engine, order):
    """The refund names only its capture (its ``payer`` is the merchant, who must not join)."""
    fixtures = ["checkout_order_approved", "payment_capture_completed", "checkout_order_completed",
                "payment_capture_refunded"]
    for fixture in (fixtures if order == "as sent" else fixtures[::-1]):
        deliver(app, fixture)
    assert store(db_engine) == [{
        "identities": sorted(BUYER + REFS),
        "traits": buyer_traits(CAPTURED),  # the completed order is the newer state
        "timeline": [PAID, PLACED, REFUNDED_ACTIVITY, SUCCEEDED],
        "metrics": money(orders_count=1, total_spent={"USD": "20.00"}, currency="USD", last_order_at=APPROVED,
                         payments_count=1, total_paid={"USD": "0.00"}, first_seen_at=APPROVED,
                         last_seen_at=REFUNDED),
    }]


def test_an_older_order_state_arriving_late_leaves_the_newer_traits(app, db_engine):
    completed = payload("checkout_order_completed")
    completed["resource"]["payer"]["name"]["given_name"] = "Johnny"
    deliver(app, body_of(completed))
    deliver(app, "checkout_order_approved")
    [buyer] = store(db_engine)
    assert buyer["traits"] == buyer_traits(CAPTURED, first_name="Johnny")
    assert buyer["timeline"] == [PAID, PLACED]


def test_a_redelivery_changes_nothing_and_a_rebuild_gives_the_same_store(app, db_engine):
    for fixture in ("payment_capture_completed", "checkout_order_approved", "payment_capture_refunded"):
        deliver(app, fixture)
    before = store(db_engine)
    deliver(app, "payment_capture_completed", expected=200)  # PayPal retries with the same event id
    deliver(app, "payment_capture_refunded", expected=200)
    assert store(db_engine) == before
    with app.app_context():
        assert rebuild(app.extensions["tributary"]) == 3
    assert store(db_engine) == before
    assert before[0]["metrics"]["total_paid"] == {"USD": "0.00"}


def test_a_buyer_holds_every_order_and_capture_of_theirs(app, db_engine):
    """Order and capture references are many per person; a second order adds to the same buyer."""
    second, capture = payload("checkout_order_approved"), payload("payment_capture_completed")
    second["id"] = "WH-4KD23845TM4318301-2JN67451R8210563C"
    capture["id"] = "WH-7YT51238LP3301925-0RX19823MA1298346"
    unit = second["resource"]["purchase_units"][0]
    second["resource"].update(id="9VJ41387WK2208615", update_time="2024-06-02T08:30:12Z")
    unit["amount"] = {"currency_code": "EUR", "value": "7.5"}
    unit["items"] *= 2
    capture["resource"].update(id="3FL71952GH4406137", amount={"currency_code": "EUR", "value": "7.5"},
                               create_time="2024-06-02T08:31:00Z", update_time="2024-06-02T08:31:00Z",
                               supplementary_data={"related_ids": {"order_id": "9VJ41387WK2208615"}})
    for body in ("checkout_order_approved", "payment_capture_completed", body_of(capture), body_of(second)):
        deliver(app, body)
    [buyer] = store(db_engine)
    assert buyer["identities"] == sorted(BUYER + REFS + [("paypal_capture_ref", "3FL71952GH4406137", "paypal"),
                                                         ("paypal_order_ref", "9VJ41387WK2208615", "paypal")])
    assert [(entry[0], entry[2], entry[4]["amount"], entry[4]["currency"]) for entry in buyer["timeline"]] == [
        ("order.placed", ORDER, "20.00", "USD"), ("order.placed", "9VJ41387WK2208615", "7.5", "EUR"),
        ("payment.succeeded", "3FL71952GH4406137", "7.5", "EUR"), ("payment.succeeded", CAPTURE, "20.00", "USD")]
    assert buyer["timeline"][1][4]["line_items_count"] == 2
    assert buyer["metrics"] == money(
        orders_count=2, total_spent={"EUR": "7.5", "USD": "20.00"}, currency="EUR",
        last_order_at="2024-06-02T08:30:12+00:00", payments_count=2, total_paid={"EUR": "7.5", "USD": "20.00"},
        first_seen_at=APPROVED, last_seen_at="2024-06-02T08:31:00+00:00")


def test_events_the_mapping_does_not_name_are_processed_without_a_profile(app, db_engine):
    denied = payload("payment_capture_completed")
    denied.update(id="WH-9DN04362RK5522814-3BX70215HL0836519", event_type="PAYMENT.CAPTURE.DENIED")
    deliver(app, body_of(denied))
    assert store(db_engine) == []
