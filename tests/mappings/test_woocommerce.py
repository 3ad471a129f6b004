"""``mappings/woocommerce.yaml`` end to end: signed WooCommerce webhooks in, the exact profile store out."""
import json

import pytest

from hub.rebuild import rebuild
from tests.conftest import profiles_snapshot as store
from tests.conftest import settle
from tests.connectors.test_woocommerce import FIXTURES, SECRET, fixture_body, php_json, post, wc_headers

CUSTOMER_CREATED = "2024-11-14T15:30:00+00:00"
CUSTOMER_UPDATED = "2024-11-20T14:45:12+00:00"
PLACED = "2024-11-15T16:02:10+00:00"
PAID = "2024-11-15T16:20:31+00:00"
CANCELLED = "2024-11-15T17:05:00+00:00"
REFUNDED = "2024-11-18T13:30:44+00:00"
NO_MONEY = {"orders_count": 0, "total_spent": {}, "currency": None, "last_order_at": None,
            "payments_count": 0, "total_paid": {}, "open_tickets": 0}
ADDRESS = {"line1": "969 Market", "line2": None, "city": "San Francisco", "region": "CA",
           "postal_code": "94103", "country": "US"}
ORDER = {"order_id": "727", "order_number": "727", "amount": "29.35", "currency": "USD"}
PLACED_ACTIVITY = ("order.placed", "woocommerce", "727", PLACED, {**ORDER, "line_items_count": 2})
PAID_ACTIVITY = ("order.paid", "woocommerce", "727", PAID, {**ORDER, "payment_method": "bacs"})
REFUNDED_ACTIVITY = ("order.refunded", "woocommerce", "731", REFUNDED,
                     {**ORDER, "refund_id": "731", "reason": "Damaged in transit"})


@pytest.fixture
def app(make_app):
    """A hub with only WooCommerce enabled, draining in-process as a newcomer's hub does."""
    return make_app(connectors={"echo": {"enabled": False},
                                "woocommerce": {"enabled": True, "webhook_secret": SECRET}},
                    inbox={"max_attempts": 1})


def payload(name: str) -> dict:
    """A fixture as a dict, to derive variants from."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def deliver(app, topic: str, body: bytes | str, delivery_id: str = "d1", expected: int = 202) -> None:
    """Post one signed webhook, then wait until the hub has processed everything it holds."""
    body = fixture_body(body) if isinstance(body, str) else body
    response = post(app.test_client(), body, wc_headers(topic, delivery_id=delivery_id))
    assert response.status_code == expected, response.get_json()
    settle(app)




def traits(observed: str, phone: str = "+15555555555", last_name: str = "Doe") -> dict:
    """John Doe's traits as one WooCommerce record dated ``observed`` gives them."""
    return {name: (value, "woocommerce", observed) for name, value in {
        "email": "john.doe@example.com", "phone": phone, "first_name": "John", "last_name": last_name,
        "address": ADDRESS}.items()}


CUSTOMER_PROFILE = {
    "identities": [("email", "john.doe@example.com", "woocommerce"), ("phone", "+15555550199", "woocommerce"),
                   ("phone", "+15555555555", "woocommerce"), ("woocommerce_customer_id", "25", "woocommerce")],
    "traits": traits(CUSTOMER_UPDATED, phone="+15555550199", last_name="Doe-Smith"),
    "timeline": [("customer.created", "woocommerce", "25", CUSTOMER_CREATED, {}),
                 ("customer.updated", "woocommerce", "25:2024-11-20T14:45:12", CUSTOMER_UPDATED, {})],
    "metrics": {**NO_MONEY, "first_seen_at": CUSTOMER_CREATED, "last_seen_at": CUSTOMER_UPDATED},
}


@pytest.mark.parametrize("order", ["in order", "update first"])
def test_a_customer_created_and_updated_is_one_profile_with_the_newest_traits(app, db_engine, order):
    """Both billing phones identify John; the older record delivered last changes no trait."""
    sends = [("customer.created", "customer_created"), ("customer.updated", "customer_updated")]
    for topic, fixture in (sends if order == "in order" else sends[::-1]):
        deliver(app, topic, fixture)
    assert store(db_engine) == [CUSTOMER_PROFILE]


ORDER_PROFILE = {
    "identities": [("email", "john.doe@example.com", "woocommerce"), ("phone", "+15555555555", "woocommerce"),
                   ("woocommerce_customer_id", "25", "woocommerce")],
    "traits": traits(PLACED),
    "timeline": [("order.cancelled", "woocommerce", "727", CANCELLED, ORDER), PAID_ACTIVITY, PLACED_ACTIVITY,
                 REFUNDED_ACTIVITY],
    # cancelled, then refunded: an order, but no spending
    "metrics": {**NO_MONEY, "orders_count": 1, "last_order_at": PLACED, "first_seen_at": PLACED,
                "last_seen_at": REFUNDED},
}


def test_an_order_through_its_statuses_lands_on_its_customer_with_exact_money(app, db_engine):
    """Each state of order 727 adds its activity once; the refund nets the spend to zero."""
    deliver(app, "order.created", "order_created", "d1")
    deliver(app, "order.updated", "order_processing", "d2")
    deliver(app, "order.updated", "order_cancelled", "d3")
    deliver(app, "order.updated", "order_refunded", "d4")
    assert store(db_engine) == [ORDER_PROFILE]


def test_the_last_state_alone_makes_up_for_deliveries_woocommerce_never_retried(app, db_engine):
    """Only the refunded state arrives: the order was still placed and paid, then refunded."""
    deliver(app, "order.updated", "order_refunded")
    refunded_not_cancelled = {**ORDER_PROFILE["metrics"], "total_spent": {"USD": "0.00"}, "currency": "USD"}
    assert store(db_engine) == [{**ORDER_PROFILE, "timeline": [PAID_ACTIVITY, PLACED_ACTIVITY, REFUNDED_ACTIVITY],
                                 "metrics": refunded_not_cancelled}]


def test_an_order_created_rendered_after_payment_is_placed_and_paid(app, db_engine):
    """WooCommerce builds the order.created body when it delivers, so it may already be paid."""
    deliver(app, "order.created", "order_processing")
    [profile] = store(db_engine)
    assert profile["timeline"] == [PAID_ACTIVITY, PLACED_ACTIVITY]


def test_a_redelivery_changes_nothing_and_a_rebuild_gives_the_same_store(app, db_engine):
    deliver(app, "customer.created", "customer_created", "d1")
    deliver(app, "customer.updated", "customer_updated", "d2")
    deliver(app, "order.created", "order_created", "d3")
    deliver(app, "order.updated", "order_processing", "d4")
    deliver(app, "order.updated", "order_processing", "d5", expected=200)  # same state: the same key
    deliver(app, "order.updated", "order_refunded", "d6")
    joined = {
        "identities": CUSTOMER_PROFILE["identities"],
        "traits": CUSTOMER_PROFILE["traits"],
        "timeline": sorted(CUSTOMER_PROFILE["timeline"] + [PAID_ACTIVITY, PLACED_ACTIVITY, REFUNDED_ACTIVITY],
                           key=repr),
        "metrics": {**ORDER_PROFILE["metrics"], "total_spent": {"USD": "0.00"}, "currency": "USD",
                    "first_seen_at": CUSTOMER_CREATED, "last_seen_at": CUSTOMER_UPDATED},
    }
    assert store(db_engine) == [joined]
    with app.app_context():
        assert rebuild(app.extensions["tributary"]) == 5
    assert store(db_engine) == [joined]


def test_an_old_order_changing_status_later_keeps_the_newer_customer_traits(app, db_engine):
    """Billing details are dated by the order's creation, not by its latest status change."""
    deliver(app, "customer.updated", "customer_updated", "d1")
    completed = dict(payload("order_processing"), status="completed", date_modified_gmt="2024-11-25T10:00:00",
                     date_completed_gmt="2024-11-25T10:00:00")
    deliver(app, "order.updated", php_json(completed), "d2")
    [profile] = store(db_engine)
    assert profile["traits"] == traits(CUSTOMER_UPDATED, phone="+15555550199", last_name="Doe-Smith")
    assert [entry[0] for entry in profile["timeline"]] == ["customer.updated", "order.paid", "order.placed"]


def test_a_partial_refund_keeps_the_status_and_is_still_refunded(app, db_engine):
    deliver(app, "order.created", "order_created", "d1")
    partial = dict(payload("order_processing"), date_modified_gmt="2024-11-16T09:00:00",
                   refunds=[{"id": 740, "reason": "", "total": "-5.00"}])
    deliver(app, "order.updated", php_json(partial), "d2")
    [profile] = store(db_engine)
    assert profile["timeline"][-1] == ("order.refunded", "woocommerce", "740", "2024-11-16T09:00:00+00:00",
                                       {**ORDER, "amount": "5.00", "refund_id": "740"})
    assert profile["metrics"]["total_spent"] == {"USD": "24.35"}


def test_every_refund_an_order_lists_is_refunded_once(app, db_engine):
    """A refund whose own delivery was lost is read from a later state: each refund id once."""
    deliver(app, "order.created", "order_created", "d1")
    first = dict(payload("order_processing"), date_modified_gmt="2024-11-16T09:00:00",
                 refunds=[{"id": 740, "reason": "", "total": "-5.00"}])
    deliver(app, "order.updated", php_json(first), "d2")
    later = dict(first, date_modified_gmt="2024-11-17T10:00:00",
                 refunds=[{"id": 742, "reason": "Late", "total": "-2.50"}, {"id": 741, "reason": "", "total": "-1.00"},
                          {"id": 740, "reason": "", "total": "-5.00"}])
    deliver(app, "order.updated", php_json(later), "d3")
    [profile] = store(db_engine)
    assert [entry for entry in profile["timeline"] if entry[0] == "order.refunded"] == [
        ("order.refunded", "woocommerce", "740", "2024-11-16T09:00:00+00:00",
         {**ORDER, "amount": "5.00", "refund_id": "740"}),
        ("order.refunded", "woocommerce", "741", "2024-11-17T10:00:00+00:00",
         {**ORDER, "amount": "1.00", "refund_id": "741"}),
        ("order.refunded", "woocommerce", "742", "2024-11-17T10:00:00+00:00",
         {**ORDER, "amount": "2.50", "refund_id": "742", "reason": "Late"})]
    assert profile["metrics"]["total_spent"] == {"USD": "20.85"}


def test_a_guest_order_is_known_by_its_billing_email_only(app, db_engine):
    """Customer id 0 is a guest: the identity rules block it, and an empty phone gives none."""
    guest = payload("order_created")
    guest.update(id=728, number="728", customer_id=0,
                 billing=dict(guest["billing"], first_name="Jane", last_name="Roe", email="Jane.Roe@Example.org",
                              phone=""))
    deliver(app, "order.created", php_json(guest))
    placed = {"order_id": "728", "order_number": "728", "amount": "29.35", "currency": "USD",
              "line_items_count": 2}
    assert store(db_engine) == [{
        "identities": [("email", "jane.roe@example.org", "woocommerce")],
        "traits": {"email": ("jane.roe@example.org", "woocommerce", PLACED),
                   "first_name": ("Jane", "woocommerce", PLACED), "last_name": ("Roe", "woocommerce", PLACED),
                   "address": (ADDRESS, "woocommerce", PLACED)},
        "timeline": [("order.placed", "woocommerce", "728", PLACED, placed)],
        "metrics": {**NO_MONEY, "orders_count": 1, "total_spent": {"USD": "29.35"}, "currency": "USD",
                    "last_order_at": PLACED, "first_seen_at": PLACED, "last_seen_at": PLACED},
    }]


def test_a_deletion_and_a_product_change_map_to_nothing(app, db_engine):
    deliver(app, "order.deleted", php_json({"id": 727}))
    product = {"id": 93, "name": "Woo Single #1", "date_modified_gmt": "2024-11-15T10:00:00"}
    deliver(app, "product.updated", php_json(product))
    assert store(db_engine) == []
