"""``mappings/shopify.yaml`` end to end: signed Shopify webhooks in, the exact profile store out."""
import json
from datetime import datetime, timezone

import pytest

from connectors.shopify import Shopify
from hub.mapping import Document, load_mapping
from hub.rebuild import rebuild
from hub.transforms import BUILT_IN
from tests.conftest import profiles_snapshot as store
from tests.conftest import settle
from tests.connectors.test_shopify import FIXTURES, SECRET, fixture_body, post, shopify_headers

BOB = "706405506930370084"
JOHN = "115310627314723954"
ORDER = "820982911946154508"
CREATED = "2024-11-14T15:30:00+00:00"
UPDATED = "2024-11-20T13:12:45+00:00"
NO_MONEY = {"orders_count": 0, "total_spent": {}, "currency": None, "last_order_at": None,
            "payments_count": 0, "total_paid": {}, "open_tickets": 0}
BOB_ADDRESS = {"line1": "123 Billing Street", "line2": None, "city": "Billtown", "region": "KY",
               "postal_code": "K2P0B0", "country": "US"}
JOHN_ADDRESS = {"line1": "123 Elm St.", "line2": None, "city": "Ottawa", "region": "ON",
                "postal_code": "K2H7A8", "country": "CA"}
ORDER_PROPERTIES = {"order_id": ORDER, "order_number": "1234", "order_name": "#9999", "amount": "403.00",
                    "currency": "USD"}


@pytest.fixture
def app(make_app):
    """A hub with only Shopify enabled, draining in-process as a newcomer's hub does."""
    return make_app(connectors={"echo": {"enabled": False},
                                "shopify": {"enabled": True, "webhook_secret": SECRET}},
                    inbox={"max_attempts": 1})


def payload(name: str) -> dict:
    """A fixture as a dict, to derive variants from."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def body_of(document: dict) -> bytes:
    """A payload as Shopify sends it: compact JSON, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def deliver(app, topic: str, body: bytes | str, webhook_id: str, expected: int = 202) -> None:
    """Post one signed webhook, then wait until the hub has processed everything it holds."""
    body = fixture_body(body) if isinstance(body, str) else body
    response = post(app.test_client(), body, shopify_headers(topic, webhook_id))
    assert response.status_code == expected, response.get_json()
    settle(app)




BOB_PROFILE = {
    "identities": [("email", "bob@biller.com", "shopify"), ("phone", "+16135550123", "shopify"),
                   ("shopify_customer_id", BOB, "shopify")],
    "traits": {"email": ("bob@biller.com", "shopify", UPDATED), "phone": ("+16135550123", "shopify", UPDATED),
               "first_name": ("Bob", "shopify", UPDATED), "last_name": ("Biller-Zoë", "shopify", UPDATED),
               "address": (BOB_ADDRESS, "shopify", UPDATED)},
    "timeline": [("customer.created", "shopify", BOB, CREATED, {}),
                 ("customer.updated", "shopify", f"{BOB}:2024-11-20T08:12:45-05:00", UPDATED, {})],
    "metrics": {**NO_MONEY, "first_seen_at": CREATED, "last_seen_at": UPDATED},
}


@pytest.mark.parametrize("order", ["in order", "update first"])
def test_a_customer_created_and_updated_is_one_profile_with_the_newest_traits(app, db_engine, order):
    """The late customers/create (older updated_at) leaves the update's traits in place."""
    sends = [("customers/create", "customers_create", "wh-c1"), ("customers/update", "customers_update", "wh-c2")]
    for topic, fixture, webhook_id in (sends if order == "in order" else sends[::-1]):
        deliver(app, topic, fixture, webhook_id)
    assert store(db_engine) == [BOB_PROFILE]


def test_a_redelivery_changes_nothing_and_a_rebuild_gives_the_same_store(app, db_engine):
    deliver(app, "customers/create", "customers_create", "wh-c1")
    deliver(app, "customers/update", "customers_update", "wh-c2")
    deliver(app, "customers/update", "customers_update", "wh-c2", expected=200)  # same delivery: duplicate
    deliver(app, "customers/update", "customers_update", "wh-c3")  # same state, new delivery id: mapped again
    assert store(db_engine) == [BOB_PROFILE]
    with app.app_context():
        assert rebuild(app.extensions["tributary"]) == 3
    assert store(db_engine) == [BOB_PROFILE]


def test_the_email_marketing_state_becomes_email_consent(app, db_engine):
    """API versions before 2025-01 send ``email_marketing_consent``; it then sets the consent trait."""
    deliver(app, "customers/update", "customers_update", "wh-c2")
    deliver(app, "customers/update", "customers_update_consent", "wh-c4")
    later = "2024-11-21T14:00:00+00:00"
    [profile] = store(db_engine)
    assert profile["traits"] == {
        "email": ("bob@biller.com", "shopify", later), "phone": ("+16135550123", "shopify", later),
        "first_name": ("Bob", "shopify", later), "last_name": ("Biller-Zoë", "shopify", later),
        "address": (BOB_ADDRESS, "shopify", later), "email_consent": ("subscribed", "shopify", later)}
    assert [entry[2] for entry in profile["timeline"]] == [f"{BOB}:2024-11-20T08:12:45-05:00",
                                                           f"{BOB}:2024-11-21T09:00:00-05:00"]


@pytest.mark.parametrize("state, consent", [
    ("subscribed", "subscribed"), ("pending", "pending"), ("unsubscribed", "unsubscribed"),
    ("invalid", "cleaned"), ("SUBSCRIBED", "subscribed"), ("not_subscribed", None), ("redacted", None),
])
def test_every_shopify_marketing_state_maps_into_the_vocabulary_or_is_left_out(state, consent):
    """``not_subscribed`` (never asked) and ``redacted`` (erased) say nothing about consent."""
    mapping = load_mapping("shopify", BUILT_IN, {"default_region": "US"})
    customer = dict(payload("customers_update_consent"), email_marketing_consent={"state": state})
    document = Shopify().parse(body_of(customer), "customers/update")
    record = mapping.map(Document(document, "customers/update", datetime.now(timezone.utc), 1, "wh"))
    assert record.traits.get("email_consent") == consent


PLACED = "2024-11-14T15:31:00+00:00"
PAID = "2024-11-14T15:35:41+00:00"
CANCELLED_AT = "2024-11-15T14:00:00+00:00"
ORDER_UPDATED = "2024-11-15T14:00:03+00:00"
JOHN_PROFILE = {
    "identities": [("email", "john@example.com", "shopify"), ("shopify_customer_id", JOHN, "shopify")],
    "traits": {"email": ("john@example.com", "shopify", ORDER_UPDATED),
               "first_name": ("John", "shopify", ORDER_UPDATED), "last_name": ("Smith", "shopify", ORDER_UPDATED),
               "address": (JOHN_ADDRESS, "shopify", ORDER_UPDATED)},
    "timeline": [("order.cancelled", "shopify", ORDER, CANCELLED_AT, {**ORDER_PROPERTIES, "reason": "customer"}),
                 ("order.paid", "shopify", ORDER, PAID, ORDER_PROPERTIES),
                 ("order.placed", "shopify", ORDER, PLACED, {**ORDER_PROPERTIES, "line_items_count": 2})],
    # the order was cancelled: it counts as an order, not as spending
    "metrics": {**NO_MONEY, "orders_count": 1, "last_order_at": PLACED, "first_seen_at": PLACED,
                "last_seen_at": CANCELLED_AT},
}


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_an_order_placed_paid_and_cancelled_lands_on_its_customer(app, db_engine, order):
    """The embedded customer gives the identities and traits; the newest order state dates them."""
    sends = [("orders/create", "orders_create", "wh-o1"), ("orders/paid", "orders_paid", "wh-o2"),
             ("orders/cancelled", "orders_cancelled", "wh-o3")]
    for topic, fixture, webhook_id in (sends if order == "in order" else sends[::-1]):
        deliver(app, topic, fixture, webhook_id)
    assert store(db_engine) == [JOHN_PROFILE]


def test_a_guest_order_is_known_by_its_email_and_phone(app, db_engine):
    """Without a customer the order's own email, phone and checkout locale describe the buyer."""
    guest = dict(payload("orders_create"), id=820982911946154600, order_number=1235, name="#10000",
                 customer=None, email=" Guest.Buyer@Example.COM ", contact_email="guest.buyer@example.com",
                 phone="+1 (613) 555-0144", customer_locale="fr-CA")
    deliver(app, "orders/create", body_of(guest), "wh-guest")
    placed = {"order_id": "820982911946154600", "order_number": "1235", "order_name": "#10000",
              "amount": "403.00", "currency": "USD", "line_items_count": 2}
    assert store(db_engine) == [{
        "identities": [("email", "guest.buyer@example.com", "shopify"), ("phone", "+16135550144", "shopify")],
        "traits": {"email": ("guest.buyer@example.com", "shopify", "2024-11-14T15:31:02+00:00"),
                   "phone": ("+16135550144", "shopify", "2024-11-14T15:31:02+00:00"),
                   "locale": ("fr-CA", "shopify", "2024-11-14T15:31:02+00:00")},
        "timeline": [("order.placed", "shopify", "820982911946154600", PLACED, placed)],
        "metrics": {**NO_MONEY, "orders_count": 1, "total_spent": {"USD": "403.00"}, "currency": "USD",
                    "last_order_at": PLACED, "first_seen_at": PLACED, "last_seen_at": PLACED},
    }]


def test_a_refund_names_only_its_order_and_joins_the_buyer(app, db_engine):
    """refunds/create carries the order id and no customer: it lands on whoever placed the order,
    with the refunded amount of its transactions netted out of the spending."""
    deliver(app, "orders/create", "orders_create", "wh-o1")
    deliver(app, "refunds/create", "refunds_create", "wh-r1")
    refunded = datetime(2024, 11, 16, 17, 0, tzinfo=timezone.utc)
    [john] = store(db_engine)
    assert john["timeline"][-1] == ("order.refunded", "shopify", "890088186047892319", refunded.isoformat(), {
        "refund_id": "890088186047892319", "order_id": ORDER, "amount": "199.00", "currency": "USD",
        "reason": "Things were damaged"})
    assert (john["metrics"]["orders_count"], john["metrics"]["total_spent"]) == (1, {"USD": "204.00"})


def test_a_refund_sums_its_successful_refund_transactions_only():
    mapping = load_mapping("shopify", BUILT_IN, {"default_region": "US"})
    refund = payload("refunds_create")
    first = refund["transactions"][0]
    refund["transactions"] = [dict(first, id=1, amount="120.00"), dict(first, id=2, amount="79.50"),
                              dict(first, id=3, amount="50.00", status="failure"),
                              dict(first, id=4, amount="10.00", kind="sale")]
    document = Shopify().parse(body_of(refund), "refunds/create")
    record = mapping.map(Document(document, "refunds/create", datetime.now(timezone.utc), 1, "wh"))
    assert [(a.properties["amount"], a.properties["currency"]) for a in record.activities] == [("199.50", "USD")]
