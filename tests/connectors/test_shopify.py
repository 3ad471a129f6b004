"""The Shopify connector: base64 HMAC-SHA256 of the raw body, one record per delivery.

Shopify's Python SDK has no webhook signer, so requests are signed here with the standard
library exactly as Shopify documents it (base64 of the HMAC-SHA256 of the body bytes, keyed
with the app's client secret).
"""
import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import inbox_rows as stored

SECRET = "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"
SHOP = "example.myshopify.com"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "shopify"
EASTERN = timezone(timedelta(hours=-5))


@pytest.fixture
def make_shopify(make_app):
    def factory(**settings):
        app = make_app(connectors={"echo": {"enabled": False},
                                   "shopify": {"enabled": True, "webhook_secret": SECRET, **settings}},
                       plugins=["tests.plugins.echo", "connectors.shopify"])
        app.extensions["tributary"].queue.signal_drain = lambda: False
        return app

    return factory


@pytest.fixture
def app(make_shopify):
    return make_shopify()


def fixture_body(name: str) -> bytes:
    """A fixture as Shopify sends it: compact JSON, UTF-8."""
    payload = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def hmac_b64(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode()


def shopify_headers(topic: str, webhook_id: str | None, event_id: str | None = None,
                    triggered_at: str | None = "2024-11-14T15:30:00.123Z") -> dict:
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": SHOP, "X-Shopify-API-Version": "2025-07"}
    optional = {"X-Shopify-Webhook-Id": webhook_id, "X-Shopify-Event-Id": event_id,
                "X-Shopify-Triggered-At": triggered_at}
    headers.update({name: value for name, value in optional.items() if value is not None})
    return headers


def post(client, body: bytes, headers: dict, secret: str | None = SECRET):
    headers = dict(headers)
    if secret is not None:
        headers.setdefault("X-Shopify-Hmac-Sha256", hmac_b64(body, secret))
    return client.post("/webhooks/shopify", data=body, headers=headers, content_type="application/json")


def test_a_customer_create_is_stored_exactly_as_received(app):
    body = fixture_body("customers_create")
    headers = shopify_headers("customers/create", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                              "7b8c9d0a-1234-5678-90ab-cdef12345678")
    response = post(app.test_client(), body, headers)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    assert stored(app) == [(
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "customers/create", body,
        datetime(2024, 11, 14, 15, 30, 0, 123000, tzinfo=timezone.utc),
        {"x-shopify-topic": "customers/create", "x-shopify-shop-domain": SHOP,
         "x-shopify-api-version": "2025-07", "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
         "x-shopify-event-id": "7b8c9d0a-1234-5678-90ab-cdef12345678",
         "x-shopify-triggered-at": "2024-11-14T15:30:00.123Z"},
    )]


@pytest.mark.parametrize("topic, fixture", [
    ("customers/update", "customers_update"),
    ("orders/create", "orders_create"),
    ("orders/paid", "orders_paid"),
    ("orders/cancelled", "orders_cancelled"),
    ("refunds/create", "refunds_create"),
])
def test_every_subscribed_topic_becomes_one_record(app, topic, fixture):
    body = fixture_body(fixture)
    response = post(app.test_client(), body, shopify_headers(topic, f"wh-{fixture}", "ev-1",
                                                             "2024-11-20T13:12:45Z"))
    assert response.status_code == 202
    [(key, stored_topic, stored_body, occurred_at, headers)] = stored(app)
    assert (key, stored_topic, stored_body) == (f"wh-{fixture}", topic, body)
    assert occurred_at == datetime(2024, 11, 20, 13, 12, 45, tzinfo=timezone.utc)
    assert headers["x-shopify-topic"] == topic


@pytest.mark.parametrize("topic, fixture, expected", [
    ("orders/cancelled", "orders_cancelled", datetime(2024, 11, 15, 9, 0, 3, tzinfo=EASTERN)),  # updated_at
    ("refunds/create", "refunds_create", datetime(2024, 11, 16, 12, 0, 0, tzinfo=EASTERN)),  # created_at
])
def test_without_triggered_at_the_payload_dates_the_record(app, topic, fixture, expected):
    body = fixture_body(fixture)
    response = post(app.test_client(), body, shopify_headers(topic, "wh-1", triggered_at=None))
    assert response.status_code == 202
    occurred_at = stored(app)[0][3]
    assert occurred_at == expected
    assert occurred_at.utcoffset() == timedelta(0)


def test_a_redelivery_is_200_and_keeps_one_record(app):
    client = app.test_client()
    body = fixture_body("orders_paid")
    headers = shopify_headers("orders/paid", "wh-paid-1", "ev-checkout-9")
    assert post(client, body, headers).status_code == 202
    again = post(client, body, dict(headers, **{"X-Shopify-Triggered-At": "2024-11-14T15:35:00Z"}))
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 1}
    assert [row[0] for row in stored(app)] == ["wh-paid-1"]


def test_one_merchant_action_on_two_topics_is_two_records(app):
    """Event-Id is shared by every topic of one action: it must not dedupe them together."""
    client = app.test_client()
    created = post(client, fixture_body("orders_create"), shopify_headers("orders/create", "wh-a", "ev-shared"))
    paid = post(client, fixture_body("orders_paid"), shopify_headers("orders/paid", "wh-b", "ev-shared"))
    assert (created.status_code, paid.status_code) == (202, 202)
    assert [(row[0], row[1]) for row in stored(app)] == [("wh-a", "orders/create"), ("wh-b", "orders/paid")]


def test_without_a_webhook_id_the_key_is_event_id_and_topic(app):
    client = app.test_client()
    body = fixture_body("orders_create")
    first = post(client, body, shopify_headers("orders/create", None, "ev-77"))
    again = post(client, body, shopify_headers("orders/create", None, "ev-77"))
    other_topic = post(client, fixture_body("orders_paid"), shopify_headers("orders/paid", None, "ev-77"))
    assert (first.status_code, again.status_code, other_topic.status_code) == (202, 200, 202)
    assert [row[0] for row in stored(app)] == ["ev-77:orders/create", "ev-77:orders/paid"]


def test_without_any_id_or_topic_the_request_is_400_and_nothing_is_stored(app):
    client = app.test_client()
    body = fixture_body("orders_create")
    no_id = post(client, body, shopify_headers("orders/create", None, None))
    assert no_id.status_code == 400
    assert no_id.get_json()["error"] == {
        "code": "bad_payload", "message": "missing X-Shopify-Webhook-Id and X-Shopify-Event-Id headers"}
    headers = shopify_headers("orders/create", "wh-1")
    del headers["X-Shopify-Topic"]
    no_topic = post(client, body, headers)
    assert no_topic.get_json()["error"]["message"] == "missing X-Shopify-Topic header"
    assert stored(app) == []


def test_the_events_delivery_headers_are_accepted(app):
    """Events deliveries use the same scheme with un-prefixed ``shopify-*`` header names."""
    body = fixture_body("customers_update")
    headers = {"shopify-hmac-sha256": hmac_b64(body), "shopify-topic": "customers/update",
               "shopify-event-id": "ev-events-1", "shopify-triggered-at": "2024-11-20T13:12:45.5Z",
               "shopify-shop-domain": SHOP}
    response = post(app.test_client(), body, headers, secret=None)
    assert response.status_code == 202
    assert stored(app) == [(
        "ev-events-1:customers/update", "customers/update", body,
        datetime(2024, 11, 20, 13, 12, 45, 500000, tzinfo=timezone.utc),
        {"shopify-topic": "customers/update", "shopify-event-id": "ev-events-1",
         "shopify-triggered-at": "2024-11-20T13:12:45.5Z", "shopify-shop-domain": SHOP},
    )]


def test_bad_signatures_are_401_and_store_nothing(app):
    client = app.test_client()
    body = fixture_body("orders_create")
    headers = shopify_headers("orders/create", "wh-1")

    wrong_secret = post(client, body, headers, secret="shpss_another-secret")
    assert wrong_secret.status_code == 401
    assert wrong_secret.get_json()["error"] == {
        "code": "bad_signature", "message": "X-Shopify-Hmac-Sha256 does not match the body"}
    assert SECRET not in wrong_secret.get_data(as_text=True)

    tampered = body.replace(b'"total_price":"403.00"', b'"total_price":"0.01"')
    assert tampered != body
    assert post(client, tampered, dict(headers, **{"X-Shopify-Hmac-Sha256": hmac_b64(body)})).status_code == 401

    missing = post(client, body, headers, secret=None)
    assert missing.get_json()["error"]["message"] == "missing X-Shopify-Hmac-Sha256 header"

    hex_digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert post(client, body, dict(headers, **{"X-Shopify-Hmac-Sha256": hex_digest})).status_code == 401

    empty = post(client, b"", headers)
    assert empty.get_json()["error"]["message"] == "empty body"
    assert stored(app) == []


def test_garbage_is_401_unsigned_and_400_signed(app):
    client = app.test_client()
    headers = shopify_headers("orders/create", "wh-1")
    unsigned = post(client, b"{not json", dict(headers, **{"X-Shopify-Hmac-Sha256": "AAAA"}))
    assert unsigned.status_code == 401
    signed = post(client, b"{not json", headers)
    assert signed.status_code == 400
    assert signed.get_json()["error"] == {"code": "bad_payload", "message": "body is not JSON"}
    array = post(client, b"[1,2]", headers)
    assert array.get_json()["error"]["message"] == "body is not a JSON object"
    assert stored(app) == []


def test_a_configured_shop_refuses_other_shops(make_shopify):
    app = make_shopify(shop_domain="Example.myshopify.com")
    client = app.test_client()
    body = fixture_body("customers_create")
    ours = post(client, body, shopify_headers("customers/create", "wh-ours"))
    assert ours.status_code == 202
    other = post(client, body, dict(shopify_headers("customers/create", "wh-other"),
                                    **{"X-Shopify-Shop-Domain": "attacker.myshopify.com"}))
    assert other.status_code == 401
    assert other.get_json()["error"]["message"] == "X-Shopify-Shop-Domain is not the configured shop_domain"
    headers = shopify_headers("customers/create", "wh-none")
    del headers["X-Shopify-Shop-Domain"]
    assert post(client, body, headers).status_code == 401
    assert [row[0] for row in stored(app)] == ["wh-ours"]


def test_settings_require_the_secret_and_default_the_rest(make_shopify, make_app):
    from hub.config import ConfigError

    app = make_shopify()
    _, settings = app.extensions["tributary"].connector("shopify")
    assert (settings["shop_domain"], settings["access_token"]) == (None, None)
    with pytest.raises(ConfigError) as info:
        make_app(connectors={"shopify": {"enabled": True, "shop_domain": SHOP}},
                 plugins=["tests.plugins.echo", "connectors.shopify"])
    assert info.value.problems == {"connectors.shopify.webhook_secret": "Missing data for required field."}
