"""``hub sync woocommerce``: customers and orders from the REST API v3, 100 a page by page number.

``responses`` fakes a store's ``/wp-json/wc/v3`` in its documented shape (a JSON list per page,
``X-WP-Total`` and ``X-WP-TotalPages``, HTTP Basic with the consumer key and secret); the
end-to-end tests process the pulled records into profiles and compare them with what the
webhooks make of the same customers and orders.
"""
from __future__ import annotations

import base64
import json
import logging
from urllib.parse import urlencode

import pytest
import requests

from connectors.woocommerce import WooCommerce
from hub.sync import NotSyncable, SyncError
from tests.conftest import inbox_rows, settle
from tests.conftest import profiles_snapshot as store
from tests.connectors.test_woocommerce import FIXTURES, SECRET, php_json, post, wc_headers
from tests.connectors.test_shopify_pull import pulled, refunds_of
from tests.connectors.test_zendesk_pull import pulling
from tests.mappings.test_woocommerce import (ADDRESS, CUSTOMER_PROFILE, CUSTOMER_UPDATED, NO_MONEY, ORDER_PROFILE,
                                             PAID_ACTIVITY, PLACED_ACTIVITY, REFUNDED_ACTIVITY, payload)
from tests.test_sync import api, urls  # noqa: F401 (api is a fixture)

STORE = "https://example.com"
BASE = f"{STORE}/wp-json/wc/v3"
KEY = "ck_7d4b1e9a0c3f52e86b1d4a7c9e0f3b2a5d8c6e1f"
KEY_SECRET = "cs_2f8e5a1c7b4d90e36a2c5f8b1d4e7a0c3b6d9f2e"
SETTINGS = {"enabled": True, "webhook_secret": SECRET, "store_url": STORE, "consumer_key": KEY,
            "consumer_secret": KEY_SECRET}
AUTHORIZATION = "Basic " + base64.b64encode(f"{KEY}:{KEY_SECRET}".encode()).decode()


def page_url(stream: str, page: int, since: str | None = None) -> str:
    """One page of a stream: 100 records in id order; orders since ``since`` (GMT) when given."""
    query = {"per_page": 100, "orderby": "id", "order": "asc"}
    if stream == "orders":
        query.update(dates_are_gmt="true", **({"modified_after": since} if since else {}))
    return f"{BASE}/{stream}?{urlencode({**query, 'page': page})}"


def listing(name: str) -> list[dict]:
    """A recorded page (``tests/fixtures/woocommerce/<name>.json``)."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def serve(api, url: str, records: str | list, total: int, pages: int) -> None:
    """Answer ``url`` with a page and WooCommerce's totals headers."""
    records = listing(records) if isinstance(records, str) else records
    api.get(url, json=records, headers={"X-WP-Total": str(total), "X-WP-TotalPages": str(pages)})


def serve_everything(api) -> None:
    serve(api, page_url("customers", 1), "pull_customers_1", 3, 2)
    serve(api, page_url("customers", 2), "pull_customers_2", 3, 2)
    serve(api, page_url("orders", 1), "pull_orders_1", 4, 2)
    serve(api, page_url("orders", 2), "pull_orders_2", 4, 2)


@pytest.fixture
def pull(make_app):
    return pulling(make_app, "woocommerce", SETTINGS)


@pytest.fixture
def hub(make_app):
    return pulling(make_app, "woocommerce", SETTINGS, process=True)


# -- the API calls ---------------------------------------------------------------------------

def test_both_streams_walk_the_pages_with_the_consumer_key(pull, api):
    serve_everything(api)
    assert pull.run() == {"customers": 3, "orders": 4}
    assert urls(api) == [page_url("customers", 1), page_url("customers", 2), page_url("orders", 1),
                         page_url("orders", 2)]
    assert page_url("orders", 1) == f"{BASE}/orders?per_page=100&orderby=id&order=asc&dates_are_gmt=true&page=1"
    assert [call.request.headers["Authorization"] for call in api.calls] == [AUTHORIZATION] * 4
    assert pull.keys() == [
        "pull:customers:25:2024-11-20T14:45:12", "pull:customers:26:2024-11-24T16:45:00",
        "pull:customers:27:2024-11-23T07:00:00",
        "pull:orders:727:2024-11-18T13:30:44", "pull:orders:728:2024-11-21T10:15:00",
        "pull:orders:729:2024-11-24T16:40:00", "pull:orders:730:2024-11-26T10:00:00"]
    assert pull.topics() == ["customer.updated"] * 3 + ["order.updated"] * 4
    assert inbox_rows(pull.app)[4][2] == json.dumps(listing("pull_orders_1")[1], sort_keys=True,
                                                    separators=(",", ":")).encode()
    assert [row[3].isoformat() for row in inbox_rows(pull.app)][:2] == ["2024-11-20T14:45:12+00:00",
                                                                        "2024-11-24T16:45:00+00:00"]
    assert (pull.state("customers"), pull.state("orders")) == ({"cursor": "2024-11-24T16:45:00"},
                                                               {"cursor": "2024-11-26T10:00:00"})
    assert pull.sleeps == []


def test_the_next_run_lists_every_customer_but_only_orders_modified_since(pull, api):
    """The customers endpoint has no modification filter: all come again, the unchanged stored once."""
    serve_everything(api)
    pull.run()
    kenji = dict(listing("pull_customers_2")[0], last_name="Satō", date_modified="2024-11-27T04:00:00",
                 date_modified_gmt="2024-11-27T09:00:00")
    serve(api, page_url("customers", 1), "pull_customers_1", 3, 2)
    serve(api, page_url("customers", 2), [kenji], 3, 2)
    noted = dict(listing("pull_orders_1")[1], customer_note="Gift wrap", date_modified="2024-11-27T03:00:00",
                 date_modified_gmt="2024-11-27T08:00:00")
    serve(api, page_url("orders", 1, since="2024-11-26T10:00:00"), [noted], 1, 1)
    assert pull.run() == {"customers": 1, "orders": 1}
    assert urls(api)[4:] == [
        page_url("customers", 1), page_url("customers", 2),
        f"{BASE}/orders?per_page=100&orderby=id&order=asc&dates_are_gmt=true&modified_after=2024-11-26T10%3A00%3A00"
        "&page=1"]
    assert pull.keys()[7:] == ["pull:customers:27:2024-11-27T09:00:00", "pull:orders:728:2024-11-27T08:00:00"]
    assert (pull.state("customers"), pull.state("orders")) == ({"cursor": "2024-11-27T09:00:00"},
                                                               {"cursor": "2024-11-27T08:00:00"})


def test_429_waits_for_retry_after_and_a_503_is_retried(pull, api):
    api.get(page_url("orders", 1), status=429, headers={"Retry-After": "7"},
            json={"code": "rest_too_many_requests", "message": "Too many requests.", "data": {"status": 429}})
    api.get(page_url("orders", 1), status=503)
    serve(api, page_url("orders", 1), "pull_orders_1", 4, 2)
    serve(api, page_url("orders", 2), "pull_orders_2", 4, 2)
    assert pull.run("orders") == {"orders": 4}
    assert pull.sleeps == [7.0, 1.0]  # Retry-After, then backoff 0.5 * 2
    assert len(pull.keys()) == 4


def test_a_run_cut_after_page_one_resumes_at_page_two(pull, api):
    serve(api, page_url("orders", 1), "pull_orders_1", 4, 2)
    api.get(page_url("orders", 2), body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run("orders", retries=0)
    assert raised.value.errors == {"orders": f"GET {BASE}/orders failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"orders": 3}
    assert pull.state("orders") == {
        "cursor": "2024-11-24T16:40:00", "started_cursor": None,
        "next": {"url": f"{BASE}/orders", "params": {"per_page": 100, "orderby": "id", "order": "asc",
                                                      "dates_are_gmt": "true", "page": 2}}}
    api.reset()
    serve(api, page_url("orders", 2), "pull_orders_2", 4, 2)
    assert pull.run("orders") == {"orders": 1}
    assert urls(api) == [page_url("orders", 2)]
    assert pull.keys() == ["pull:orders:727:2024-11-18T13:30:44", "pull:orders:728:2024-11-21T10:15:00",
                           "pull:orders:729:2024-11-24T16:40:00", "pull:orders:730:2024-11-26T10:00:00"]
    assert pull.state("orders") == {"cursor": "2024-11-26T10:00:00"}


def test_a_refused_key_stops_the_stream_without_showing_it(pull, api):
    api.get(page_url("customers", 1), status=401,
            json={"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
                  "data": {"status": 401}})
    with pytest.raises(SyncError) as raised:
        pull.run("customers")
    assert raised.value.errors == {"customers": f"GET {BASE}/customers answered 401 Unauthorized"}
    assert KEY not in str(raised.value) and KEY_SECRET not in str(raised.value)
    assert (pull.keys(), pull.sleeps) == ([], [])


NEEDS = "in its configuration to pull from the WooCommerce REST API"


@pytest.mark.parametrize("settings, message", [
    ({}, f"connector 'woocommerce' needs store_url, consumer_key, consumer_secret {NEEDS}"),
    ({"store_url": STORE, "consumer_key": KEY}, f"connector 'woocommerce' needs consumer_secret {NEEDS}"),
    ({"api_base": "http://127.0.0.1:9000/wp-json/wc/v3", "consumer_secret": KEY_SECRET},
     f"connector 'woocommerce' needs consumer_key {NEEDS}"),
    ({"store_url": "http://shop.example.com", "consumer_key": KEY, "consumer_secret": KEY_SECRET},
     "connector 'woocommerce' pulls over HTTPS only: WooCommerce takes the consumer key and secret by HTTP Basic "
     "over HTTPS alone, so store_url must start with https://"),
])
def test_missing_credentials_are_named_before_any_call(make_app, api, settings, message):
    hub = pulling(make_app, "woocommerce", {"enabled": True, "webhook_secret": SECRET, **settings})
    with pytest.raises(NotSyncable) as raised:
        hub.run()
    assert str(raised.value) == message
    assert KEY_SECRET not in str(raised.value)


def test_the_api_base_is_the_stores_unless_overridden():
    woocommerce = WooCommerce()
    assert woocommerce.api_base(SETTINGS) == BASE
    assert woocommerce.api_base({**SETTINGS, "store_url": "https://example.com/shop/"}) == \
        "https://example.com/shop/wp-json/wc/v3"
    assert woocommerce.api_base({**SETTINGS, "api_base": "http://127.0.0.1:9000/wc"}) == "http://127.0.0.1:9000/wc"
    assert woocommerce.api_base({"consumer_key": KEY}) == ""


# -- end to end: pulled records in profiles ----------------------------------------------------

#: John: customer 25 and order 727 (refunded, never cancelled), as the webhooks give them
JOHN = {
    "identities": CUSTOMER_PROFILE["identities"],
    "traits": CUSTOMER_PROFILE["traits"],
    "timeline": sorted([CUSTOMER_PROFILE["timeline"][1], PAID_ACTIVITY, PLACED_ACTIVITY, REFUNDED_ACTIVITY], key=repr),
    "metrics": {**ORDER_PROFILE["metrics"], "total_spent": {"USD": "0.00"}, "currency": "USD",
                "last_seen_at": CUSTOMER_UPDATED},
}
MARIA_ADDRESS = {"line1": "Calle de Alcalá 42", "line2": None, "city": "Madrid", "region": "M",
                 "postal_code": "28014", "country": "ES"}
MARIA_SEEN = "2024-11-24T16:45:00+00:00"
KENJI_SEEN = "2024-11-23T07:00:00+00:00"
REFUNDS_AT = "2024-11-24T16:40:00+00:00"
CANCELLED_ORDER = {"order_id": "728", "order_number": "728", "amount": "45.00", "currency": "EUR"}
PARTLY_REFUNDED = {"order_id": "729", "order_number": "729", "amount": "120.00", "currency": "EUR"}
GUEST_ORDER = {"order_id": "730", "order_number": "730", "amount": "18.90", "currency": "USD"}
PULLED = [
    {  # Kenji: an account never modified, with an empty billing address
        "identities": [("email", "kenji.sato@example.jp", "woocommerce"),
                       ("woocommerce_customer_id", "27", "woocommerce")],
        "traits": {name: (value, "woocommerce", KENJI_SEEN) for name, value in {
            "email": "kenji.sato@example.jp", "first_name": "Kenji", "last_name": "Sato"}.items()},
        "timeline": [("customer.updated", "woocommerce", "27:2024-11-23T07:00:00", KENJI_SEEN, {})],
        "metrics": {**NO_MONEY, "first_seen_at": KENJI_SEEN, "last_seen_at": KENJI_SEEN},
    },
    JOHN,
    {  # a guest (customer_id 0): known by the billing e-mail
        "identities": [("email", "jane.roe@example.org", "woocommerce")],
        "traits": {name: (value, "woocommerce", "2024-11-25T08:00:00+00:00") for name, value in {
            "email": "jane.roe@example.org", "first_name": "Jane", "last_name": "Roe",
            "address": {"line1": "1 Infinite Loop", "line2": None, "city": "Cupertino", "region": "CA",
                        "postal_code": "95014", "country": "US"}}.items()},
        "timeline": [("order.paid", "woocommerce", "730", "2024-11-25T08:00:45+00:00",
                      {**GUEST_ORDER, "payment_method": "stripe"}),
                     ("order.placed", "woocommerce", "730", "2024-11-25T08:00:00+00:00",
                      {**GUEST_ORDER, "line_items_count": 1})],
        "metrics": {**NO_MONEY, "orders_count": 1, "total_spent": {"USD": "18.90"}, "currency": "USD",
                    "last_order_at": "2024-11-25T08:00:00+00:00", "first_seen_at": "2024-11-25T08:00:00+00:00",
                    "last_seen_at": "2024-11-25T08:00:45+00:00"},
    },
    {  # María: a cancelled order (no spending) and a paid one refunded twice (both refunds counted)
        "identities": [("email", "maria.garcia@example.es", "woocommerce"), ("phone", "+34612345678", "woocommerce"),
                       ("woocommerce_customer_id", "26", "woocommerce")],
        "traits": {name: (value, "woocommerce", MARIA_SEEN) for name, value in {
            "email": "maria.garcia@example.es", "phone": "+34612345678", "first_name": "María",
            "last_name": "García", "address": MARIA_ADDRESS}.items()},
        "timeline": [
            ("customer.updated", "woocommerce", "26:2024-11-24T16:45:00", MARIA_SEEN, {}),
            ("order.cancelled", "woocommerce", "728", "2024-11-21T10:15:00+00:00", CANCELLED_ORDER),
            ("order.paid", "woocommerce", "729", "2024-11-22T12:01:30+00:00",
             {**PARTLY_REFUNDED, "payment_method": "stripe"}),
            ("order.placed", "woocommerce", "728", "2024-11-21T09:00:00+00:00",
             {**CANCELLED_ORDER, "line_items_count": 1}),
            ("order.placed", "woocommerce", "729", "2024-11-22T12:00:00+00:00",
             {**PARTLY_REFUNDED, "line_items_count": 3}),
            ("order.refunded", "woocommerce", "741", REFUNDS_AT, {**PARTLY_REFUNDED, "amount": "15.50",
                                                                  "refund_id": "741"}),
            ("order.refunded", "woocommerce", "745", REFUNDS_AT, {**PARTLY_REFUNDED, "amount": "30.00",
                                                                  "refund_id": "745", "reason": "Size exchange"})],
        "metrics": {**NO_MONEY, "orders_count": 2, "total_spent": {"EUR": "74.50"}, "currency": "EUR",
                    "last_order_at": "2024-11-22T12:00:00+00:00", "first_seen_at": "2024-11-21T09:00:00+00:00",
                    "last_seen_at": MARIA_SEEN},
    },
]


@pytest.mark.parametrize("streams", [("customers", "orders"), ("orders", "customers")])
def test_pulled_customers_and_orders_become_profiles(hub, api, db_engine, streams):
    serve_everything(api)
    assert pulled(hub, *streams) == {"customers": 3, "orders": 4}
    assert store(db_engine) == sorted(PULLED, key=repr)


def webhook(hub, topic: str, name: str, delivery_id: str) -> None:
    """POST a signed WooCommerce webhook carrying fixture ``name``, then process it."""
    response = post(hub.app.test_client(), php_json(payload(name)), wc_headers(topic, delivery_id=delivery_id))
    assert response.status_code == 202
    settle(hub.app)


ORDER_WEBHOOKS = [("order.created", "order_created"), ("order.updated", "order_processing"),
                  ("order.updated", "order_cancelled"), ("order.updated", "order_refunded")]


@pytest.mark.parametrize("webhooks_first", [True, False])
def test_an_order_seen_by_webhooks_and_by_pull_is_one_order_with_one_refund(hub, api, db_engine, webhooks_first):
    """Order 727 by webhook (created, processing, cancelled, refunded) and by pull (its refunded
    state): each activity is stored once, and the store is the webhooks' alone."""
    serve(api, page_url("orders", 1), [payload("order_refunded")], 1, 1)
    steps = [lambda: [webhook(hub, topic, name, f"d{n}") for n, (topic, name) in enumerate(ORDER_WEBHOOKS)],
             lambda: pulled(hub, "orders")]
    for step in steps if webhooks_first else reversed(steps):
        step()
    assert store(db_engine) == [ORDER_PROFILE]


def test_a_pulled_customer_is_the_customer_updated_webhook(hub, api, db_engine):
    webhook(hub, "customer.updated", "customer_updated", "d1")
    by_webhook = store(db_engine)
    serve(api, page_url("customers", 1), [payload("customer_updated")], 1, 1)
    assert pulled(hub, "customers") == {"customers": 1}
    assert store(db_engine) == by_webhook
    assert [entry[2] for entry in by_webhook[0]["timeline"]] == ["25:2024-11-20T14:45:12"]
    assert by_webhook[0]["traits"]["address"] == (ADDRESS, "woocommerce", CUSTOMER_UPDATED)


def test_every_refund_an_order_lists_is_mapped(hub, api, db_engine, caplog):
    """The order topics map each refund of the order, however many: one activity per refund id."""
    refunds = [{"id": 800 + n, "reason": "", "total": "-1.00"} for n in range(7)]
    serve(api, page_url("orders", 1), [dict(payload("order_processing"), refunds=refunds)], 1, 1)
    with caplog.at_level(logging.WARNING, logger="connectors.woocommerce"):
        pulled(hub, "orders")
    [john] = store(db_engine)
    assert refunds_of(john) == [str(800 + n) for n in range(7)]
    assert john["metrics"]["total_spent"] == {"USD": "22.35"}
    assert caplog.messages == []
