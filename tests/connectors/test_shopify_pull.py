"""``hub sync shopify``: customers and orders from the REST Admin API, 250 a page by ``Link`` header.

``responses`` fakes the Admin API in its documented shape (``{"customers": [...]}``, the next
page in ``Link: <...page_info=...>; rel="next"``, ``X-Shopify-Shop-Api-Call-Limit``); the
end-to-end tests process the pulled records into profiles and compare them with what the
webhooks make of the same customers, orders and refunds.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest
import requests

from connectors.shopify import Shopify
from hub.sync import NotSyncable, SyncError
from tests.conftest import inbox_rows, settle
from tests.conftest import profiles_snapshot as store
from tests.connectors.test_shopify import FIXTURES, SECRET, SHOP, post, shopify_headers
from tests.connectors.test_zendesk_pull import pulling
from tests.mappings.test_shopify import (BOB, BOB_ADDRESS, CANCELLED_AT, JOHN, JOHN_ADDRESS, JOHN_PROFILE, NO_MONEY,
                                         ORDER, ORDER_PROPERTIES, PLACED, UPDATED, body_of, payload)
from tests.test_sync import api, urls  # noqa: F401 (api is a fixture)

BASE = f"https://{SHOP}/admin/api/2025-07"
TOKEN = "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"
SETTINGS = {"enabled": True, "webhook_secret": SECRET, "shop_domain": SHOP, "access_token": TOKEN}
CALLS = {"X-Shopify-Shop-Api-Call-Limit": "1/40"}


def first(stream: str, since: str | None = None) -> str:
    """The first call of a stream: 250 a page, any order status, ``updated_at_min`` on later runs."""
    query = {"status": "any"} if stream == "orders" else {}
    query.update(limit=250, **({"updated_at_min": since} if since else {}))
    return f"{BASE}/{stream}.json?{urlencode(query)}"


def later(stream: str, page_info: str) -> str:
    """A later page as the ``Link`` header names it: only ``limit`` and ``page_info``."""
    return f"{BASE}/{stream}.json?limit=250&page_info={page_info}"


def listing(name: str) -> dict:
    """A recorded page (``tests/fixtures/shopify/<name>.json``)."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def serve(api, url: str, name: str | dict, next_url: str | None = None, calls: str = "1/40") -> None:
    """Answer ``url`` with a page, linking to ``next_url`` (and back, as Shopify does) when given."""
    links = [f'<{url}>; rel="previous"'] if "page_info" in url else []
    links += [f'<{next_url}>; rel="next"'] if next_url else []
    headers = {"X-Shopify-Shop-Api-Call-Limit": calls, **({"Link": ", ".join(links)} if links else {})}
    api.get(url, json=listing(name) if isinstance(name, str) else name, headers=headers)


CUSTOMERS_2 = later("customers", "eyJsYXN0X2lkIjoxMTUzMTA2MjczMTQ3MjM5NTQsImRpcmVjdGlvbiI6Im5leHQifQ")
ORDERS_2 = later("orders", "eyJzdGF0dXMiOiJhbnkiLCJsYXN0X2lkIjo2MDEzMjg0MTM5MjQwLCJkaXJlY3Rpb24iOiJuZXh0In0")


def serve_everything(api) -> None:
    serve(api, first("customers"), "pull_customers_1", CUSTOMERS_2)
    serve(api, CUSTOMERS_2, "pull_customers_2")
    serve(api, first("orders"), "pull_orders_1", ORDERS_2)
    serve(api, ORDERS_2, "pull_orders_2")


@pytest.fixture
def pull(make_app):
    return pulling(make_app, "shopify", SETTINGS)


@pytest.fixture
def hub(make_app):
    return pulling(make_app, "shopify", SETTINGS, process=True)


# -- the API calls ---------------------------------------------------------------------------

def test_both_streams_follow_the_link_header_with_the_access_token(pull, api):
    serve_everything(api)
    assert pull.run() == {"customers": 3, "orders": 3}
    assert urls(api) == [first("customers"), CUSTOMERS_2, first("orders"), ORDERS_2]
    assert first("orders") == f"{BASE}/orders.json?status=any&limit=250"
    assert [call.request.headers["X-Shopify-Access-Token"] for call in api.calls] == [TOKEN] * 4
    assert pull.keys() == [
        f"pull:customers:{BOB}:2024-11-20T08:12:45-05:00", f"pull:customers:{JOHN}:2024-11-14T10:31:05-05:00",
        "pull:customers:207119551:2024-11-19T12:30:00-05:00",
        f"pull:orders:{ORDER}:2024-11-16T12:00:05-05:00", "pull:orders:6013284139240:2024-11-22T11:00:02-05:00",
        "pull:orders:6013284139241:2024-11-23T14:00:04-05:00"]
    assert pull.topics() == ["customers/update"] * 3 + ["orders/updated"] * 3
    assert inbox_rows(pull.app)[3][2] == json.dumps(listing("pull_orders_1")["orders"][0], sort_keys=True,
                                                    separators=(",", ":")).encode()
    assert (pull.state("customers"), pull.state("orders")) == ({"cursor": "2024-11-20T08:12:45-05:00"},
                                                               {"cursor": "2024-11-23T14:00:04-05:00"})
    assert pull.sleeps == []


def test_the_next_run_asks_only_for_what_was_updated_since_the_latest_update(pull, api):
    serve_everything(api)
    pull.run()
    guest = listing("pull_orders_2")["orders"][0]
    fulfilled = dict(guest, fulfillment_status="fulfilled", updated_at="2024-11-25T08:30:00-05:00")
    serve(api, first("orders", since="2024-11-23T14:00:04-05:00"), {"orders": [guest, fulfilled]})
    assert pull.run("orders") == {"orders": 1}  # updated_at_min is inclusive: the guest order comes again
    assert urls(api)[4:] == [f"{BASE}/orders.json?status=any&limit=250&updated_at_min=2024-11-23T14%3A00%3A04-05%3A00"]
    assert pull.keys()[6:] == ["pull:orders:6013284139241:2024-11-25T08:30:00-05:00"]
    assert pull.state("orders") == {"cursor": "2024-11-25T08:30:00-05:00"}


def test_a_nearly_full_bucket_waits_for_it_to_leak(pull, api):
    """At 36 calls of 40 the pull waits 3 s (6 calls over 30, leaking 2 a second) before page 2."""
    serve(api, first("customers"), "pull_customers_1", CUSTOMERS_2, calls="36/40")
    serve(api, CUSTOMERS_2, "pull_customers_2", calls="30/40")
    assert pull.run("customers") == {"customers": 3}
    assert pull.sleeps == [3.0]


@pytest.mark.parametrize("calls, seconds", [
    ("1/40", 0.0), ("30/40", 0.0), ("32/40", 1.0), ("40/40", 5.0), ("70/80", 2.5), ("340/400", 2.0),
    (None, 0.0), ("garbage", 0.0), ("3/0", 0.0),
])
def test_the_pause_empties_the_bucket_to_three_quarters(calls, seconds):
    response = requests.Response()
    if calls is not None:
        response.headers["X-Shopify-Shop-Api-Call-Limit"] = calls
    assert Shopify().throttle(response) == seconds


def test_429_waits_for_retry_after_and_a_500_is_retried(pull, api):
    api.get(first("orders"), status=429, headers={"Retry-After": "2.0", "X-Shopify-Shop-Api-Call-Limit": "40/40"},
            json={"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted "
                            "service."})
    api.get(first("orders"), status=500, json={"errors": "Internal Server Error"})
    serve(api, first("orders"), "pull_orders_1", ORDERS_2)
    serve(api, ORDERS_2, "pull_orders_2")
    assert pull.run("orders") == {"orders": 3}
    assert pull.sleeps == [2.0, 1.0]  # Retry-After, then backoff 0.5 * 2
    assert len(pull.keys()) == 3


def test_a_run_cut_after_page_one_resumes_at_page_two(pull, api):
    serve(api, first("orders"), "pull_orders_1", ORDERS_2)
    api.get(ORDERS_2, body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run("orders", retries=0)
    assert raised.value.errors == {"orders": f"GET {BASE}/orders.json failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"orders": 2}
    assert pull.state("orders") == {"cursor": "2024-11-22T11:00:02-05:00", "started_cursor": None,
                                    "next": {"url": ORDERS_2, "params": {}}}
    api.reset()
    serve(api, ORDERS_2, "pull_orders_2")
    assert pull.run("orders") == {"orders": 1}
    assert urls(api) == [ORDERS_2]
    assert pull.keys() == [f"pull:orders:{ORDER}:2024-11-16T12:00:05-05:00",
                           "pull:orders:6013284139240:2024-11-22T11:00:02-05:00",
                           "pull:orders:6013284139241:2024-11-23T14:00:04-05:00"]
    assert pull.state("orders") == {"cursor": "2024-11-23T14:00:04-05:00"}


def test_a_refused_token_stops_the_stream_without_showing_it(pull, api):
    api.get(first("customers"), status=401,
            json={"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
    with pytest.raises(SyncError) as raised:
        pull.run("customers")
    assert raised.value.errors == {"customers": f"GET {BASE}/customers.json answered 401 Unauthorized"}
    assert TOKEN not in str(raised.value)
    assert (pull.keys(), pull.sleeps) == ([], [])


@pytest.mark.parametrize("settings, message", [
    ({}, "connector 'shopify' needs shop_domain, access_token in its configuration to pull from the Shopify "
         "Admin API"),
    ({"shop_domain": SHOP}, "connector 'shopify' needs access_token in its configuration to pull from the Shopify "
                            "Admin API"),
    ({"api_base": "http://127.0.0.1:9000/admin/api/2025-07"},
     "connector 'shopify' needs access_token in its configuration to pull from the Shopify Admin API"),
])
def test_missing_credentials_are_named_before_any_call(make_app, api, settings, message):
    hub = pulling(make_app, "shopify", {"enabled": True, "webhook_secret": SECRET, **settings})
    with pytest.raises(NotSyncable) as raised:
        hub.run()
    assert str(raised.value) == message


def test_the_api_base_is_the_shops_unless_overridden():
    shopify = Shopify()
    assert shopify.api_base(SETTINGS) == BASE
    assert shopify.api_base({**SETTINGS, "shop_domain": "https://Example.myshopify.com/"}) == BASE
    assert shopify.api_base({**SETTINGS, "api_base": "http://127.0.0.1:9000/admin"}) == "http://127.0.0.1:9000/admin"
    assert shopify.api_base({"access_token": TOKEN}) == ""


# -- end to end: pulled records in profiles ----------------------------------------------------

BOB_ORDER = "6013284139240"
GUEST_ORDER = "6013284139241"
BOB_ORDER_UPDATED = "2024-11-22T16:00:02+00:00"
BOB_PLACED = "2024-11-20T14:00:00+00:00"
GUEST_PLACED = "2024-11-23T19:00:00+00:00"
REFUND = ("order.refunded", "shopify", "890088186047892319", "2024-11-16T17:00:00+00:00",
          {"refund_id": "890088186047892319", "order_id": ORDER, "amount": "199.00", "currency": "USD",
           "reason": "Things were damaged"})
BOB_ORDER_PROPERTIES = {"order_id": BOB_ORDER, "order_number": "1001", "order_name": "#1001", "amount": "120.50",
                        "currency": "USD"}
JOHN_UPDATED = "2024-11-16T17:00:05+00:00"
PULLED = [
    {  # Bob: customer record, then an order refunded twice (a failed refund transaction is no money)
        "identities": [("email", "bob@biller.com", "shopify"), ("phone", "+16135550123", "shopify"),
                       ("shopify_customer_id", BOB, "shopify")],
        "traits": {"email": ("bob@biller.com", "shopify", BOB_ORDER_UPDATED),
                   "phone": ("+16135550123", "shopify", BOB_ORDER_UPDATED),
                   "first_name": ("Bob", "shopify", BOB_ORDER_UPDATED),
                   "last_name": ("Biller-Zoë", "shopify", BOB_ORDER_UPDATED),
                   "address": (BOB_ADDRESS, "shopify", BOB_ORDER_UPDATED),
                   "locale": ("en-CA", "shopify", BOB_ORDER_UPDATED)},
        "timeline": [
            ("customer.updated", "shopify", f"{BOB}:2024-11-20T08:12:45-05:00", UPDATED, {}),
            ("order.placed", "shopify", BOB_ORDER, BOB_PLACED, {**BOB_ORDER_PROPERTIES, "line_items_count": 3}),
            ("order.refunded", "shopify", "930000000001", "2024-11-21T15:00:00+00:00",
             {"refund_id": "930000000001", "order_id": BOB_ORDER, "amount": "20.00", "currency": "USD",
              "reason": "Wrong size"}),
            ("order.refunded", "shopify", "930000000002", "2024-11-22T16:00:00+00:00",
             {"refund_id": "930000000002", "order_id": BOB_ORDER, "amount": "10.25", "currency": "USD"})],
        "metrics": {**NO_MONEY, "orders_count": 1, "total_spent": {"USD": "90.25"}, "currency": "USD",
                    "last_order_at": BOB_PLACED, "first_seen_at": UPDATED, "last_seen_at": "2024-11-22T16:00:00+00:00"},
    },
    {  # a customer without orders, subscribed to e-mail marketing
        "identities": [("email", "chloe.martin@example.fr", "shopify"), ("phone", "+33612345678", "shopify"),
                       ("shopify_customer_id", "207119551", "shopify")],
        "traits": {name: (value, "shopify", "2024-11-19T17:30:00+00:00") for name, value in {
            "email": "chloe.martin@example.fr", "phone": "+33612345678", "first_name": "Chloé", "last_name": "Martin",
            "address": {"line1": "12 rue de la Paix", "line2": "3e étage", "city": "Paris", "region": None,
                        "postal_code": "75002", "country": "FR"},
            "email_consent": "subscribed"}.items()},
        "timeline": [("customer.updated", "shopify", "207119551:2024-11-19T12:30:00-05:00",
                      "2024-11-19T17:30:00+00:00", {})],
        "metrics": {**NO_MONEY, "first_seen_at": "2024-11-19T17:30:00+00:00",
                    "last_seen_at": "2024-11-19T17:30:00+00:00"},
    },
    {  # a guest: known by the order's e-mail and phone
        "identities": [("email", "guest.buyer@example.com", "shopify"), ("phone", "+16135550144", "shopify")],
        "traits": {name: (value, "shopify", "2024-11-23T19:00:04+00:00") for name, value in {
            "email": "guest.buyer@example.com", "phone": "+16135550144", "locale": "fr-CA"}.items()},
        "timeline": [("order.placed", "shopify", GUEST_ORDER, GUEST_PLACED,
                      {"order_id": GUEST_ORDER, "order_number": "1002", "order_name": "#1002", "amount": "59.00",
                       "currency": "CAD", "line_items_count": 1})],
        "metrics": {**NO_MONEY, "orders_count": 1, "total_spent": {"CAD": "59.00"}, "currency": "CAD",
                    "last_order_at": GUEST_PLACED, "first_seen_at": GUEST_PLACED, "last_seen_at": GUEST_PLACED},
    },
    {  # John: the cancelled order of the webhook fixtures, with its refund; cancelled, it is no spending
        "identities": JOHN_PROFILE["identities"],
        "traits": {"email": ("john@example.com", "shopify", JOHN_UPDATED),
                   "first_name": ("John", "shopify", JOHN_UPDATED), "last_name": ("Smith", "shopify", JOHN_UPDATED),
                   "address": (JOHN_ADDRESS, "shopify", JOHN_UPDATED)},
        "timeline": [
            ("customer.updated", "shopify", f"{JOHN}:2024-11-14T10:31:05-05:00", "2024-11-14T15:31:05+00:00", {}),
            ("order.cancelled", "shopify", ORDER, CANCELLED_AT, {**ORDER_PROPERTIES, "reason": "customer"}),
            ("order.placed", "shopify", ORDER, PLACED, {**ORDER_PROPERTIES, "line_items_count": 2}),
            REFUND],
        "metrics": {**NO_MONEY, "orders_count": 1, "last_order_at": PLACED, "first_seen_at": PLACED,
                    "last_seen_at": "2024-11-16T17:00:00+00:00"},
    },
]


def pulled(hub, *streams: str) -> dict[str, int]:
    """Pull each stream in turn, processing what it stored before the next; the new records per stream."""
    stored = {}
    for stream in streams:
        stored.update(hub.run(stream))
        settle(hub.app)
    return stored


def refunds_of(profile: dict) -> list[str]:
    """The source ids of a profile's ``order.refunded`` activities, in timeline order."""
    return [entry[2] for entry in profile["timeline"] if entry[0] == "order.refunded"]


@pytest.mark.parametrize("streams", [("customers", "orders"), ("orders", "customers")])
def test_pulled_customers_and_orders_become_profiles(hub, api, db_engine, streams):
    serve_everything(api)
    assert pulled(hub, *streams) == {"customers": 3, "orders": 3}
    assert store(db_engine) == PULLED


def webhook(hub, topic: str, name: str, webhook_id: str) -> None:
    """POST a signed Shopify webhook carrying fixture ``name``, then process it."""
    response = post(hub.app.test_client(), body_of(payload(name)), shopify_headers(topic, webhook_id))
    assert response.status_code == 202
    settle(hub.app)


JOHN_PULLED = listing("pull_orders_1")["orders"][0]
JOHN_WEBHOOKS = [("orders/create", "orders_create"), ("orders/paid", "orders_paid"),
                 ("orders/cancelled", "orders_cancelled"), ("refunds/create", "refunds_create")]


@pytest.mark.parametrize("webhooks_first", [True, False])
def test_an_order_seen_by_webhooks_and_by_pull_is_one_order_with_one_refund(hub, api, db_engine, webhooks_first):
    """orders/create, orders/paid, orders/cancelled and refunds/create give John's order; the pull
    gives the same order, cancelled, with its refund in ``refunds``: each activity is stored once."""
    serve(api, first("orders"), {"orders": [JOHN_PULLED]})
    steps = [lambda: [webhook(hub, topic, name, f"wh-{n}") for n, (topic, name) in enumerate(JOHN_WEBHOOKS)],
             lambda: pulled(hub, "orders")]
    for step in steps if webhooks_first else reversed(steps):
        step()
    assert store(db_engine) == [{
        **JOHN_PROFILE,
        "traits": {name: (value, source, JOHN_UPDATED) for name, (value, source, _) in JOHN_PROFILE["traits"].items()},
        "timeline": sorted(JOHN_PROFILE["timeline"] + [REFUND], key=repr),
        "metrics": {**JOHN_PROFILE["metrics"], "last_seen_at": "2024-11-16T17:00:00+00:00"},
    }]


def test_a_pulled_customer_is_the_customers_update_webhook(hub, api, db_engine):
    """The same customer state by webhook and by pull is one customer.updated."""
    webhook(hub, "customers/update", "customers_update", "wh-c2")
    by_webhook = store(db_engine)
    serve(api, first("customers"), {"customers": [payload("customers_update")]})
    assert pulled(hub, "customers") == {"customers": 1}
    assert store(db_engine) == by_webhook
    assert [entry[2] for entry in by_webhook[0]["timeline"]] == [f"{BOB}:2024-11-20T08:12:45-05:00"]


def test_every_refund_an_order_lists_is_mapped(hub, api, db_engine, caplog):
    """orders/updated maps each refund of the order, however many: one activity per refund id."""
    refund = payload("refunds_create")
    refunds = [dict(refund, id=890088186047892320 + n, note=f"refund {n}") for n in range(7)]
    serve(api, first("orders"), {"orders": [dict(JOHN_PULLED, refunds=refunds)]})
    with caplog.at_level(logging.WARNING, logger="connectors.shopify"):
        pulled(hub, "orders")
    [john] = store(db_engine)
    assert refunds_of(john) == [str(890088186047892320 + n) for n in range(7)]
    assert caplog.messages == []
