"""The WooCommerce connector: base64 HMAC-SHA256 of the raw body, keys derived from the state.

WooCommerce has no Python webhook signer, so requests are signed here with the standard
library as ``WC_Webhook::generate_signature`` does: ``base64_encode(hash_hmac('sha256', $body,
wp_specialchars_decode($secret, ENT_QUOTES), true))``, over the body ``wp_json_encode`` made.
"""
import base64
import hashlib
import hmac
import html
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import inbox_rows as stored

SECRET = "Zq8@x!L#pW3$vN&t9^kR*yB(2)mC-e7_uH[4]sJ{6}gD<5>fA~1"
SOURCE = "https://example.com/"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "woocommerce"
USER_AGENT = "WooCommerce/9.4.1 Hookshot (WordPress/6.7.1)"


@pytest.fixture
def make_woo(make_app):
    def factory(secret: str = SECRET, **settings):
        app = make_app(connectors={"echo": {"enabled": False},
                                   "woocommerce": {"enabled": True, "webhook_secret": secret, **settings}},
                       plugins=["tests.plugins.echo", "connectors.woocommerce"])
        app.extensions["tributary"].queue.signal_drain = lambda: False
        return app

    return factory


@pytest.fixture
def app(make_woo):
    return make_woo()


def php_json(payload) -> bytes:
    """``trim(wp_json_encode($payload))``: compact, slashes and non-ASCII escaped."""
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()


def fixture_body(name: str) -> bytes:
    return php_json(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


def wc_signature(body: bytes, secret: str = SECRET) -> str:
    key = html.unescape(secret).encode()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def wc_headers(topic: str, delivery_id: str = "2f4c4a3d6e5b8a1c0d9e7f6a5b4c3d2e", webhook_id: str = "12") -> dict:
    resource, event = topic.split(".")
    return {"User-Agent": USER_AGENT, "X-WC-Webhook-Source": SOURCE, "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event, "X-WC-Webhook-ID": webhook_id,
            "X-WC-Webhook-Delivery-ID": delivery_id}


def post(client, body: bytes, headers: dict, secret: str | None = SECRET):
    headers = dict(headers)
    if secret is not None:
        headers.setdefault("X-WC-Webhook-Signature", wc_signature(body, secret))
    return client.post("/webhooks/woocommerce", data=body, headers=headers, content_type="application/json")


def test_a_customer_created_is_stored_exactly_as_received(app):
    body = fixture_body("customer_created")
    assert b'"avatar_url":"https:\\/\\/secure.gravatar.com' in body
    response = post(app.test_client(), body, wc_headers("customer.created"))
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    assert stored(app) == [(
        "customer:25:2024-11-14T15:30:00:created", "customer.created", body,
        datetime(2024, 11, 14, 15, 30, tzinfo=timezone.utc),
        {"x-wc-webhook-source": SOURCE, "x-wc-webhook-topic": "customer.created",
         "x-wc-webhook-resource": "customer", "x-wc-webhook-event": "created", "x-wc-webhook-id": "12",
         "x-wc-webhook-delivery-id": "2f4c4a3d6e5b8a1c0d9e7f6a5b4c3d2e"},
    )]


def test_customer_and_order_lifecycle_topics_each_become_a_record(app):
    client = app.test_client()
    sent = [("customer.updated", "customer_updated"), ("order.created", "order_created"),
            ("order.updated", "order_processing"), ("order.updated", "order_cancelled"),
            ("order.updated", "order_refunded")]
    for index, (topic, fixture) in enumerate(sent):
        response = post(client, fixture_body(fixture), wc_headers(topic, delivery_id=f"d{index}"))
        assert response.status_code == 202, fixture
    rows = stored(app)
    assert [(key, topic, occurred_at) for key, topic, _, occurred_at, _ in rows] == [
        ("customer:25:2024-11-20T14:45:12:updated", "customer.updated",
         datetime(2024, 11, 20, 14, 45, 12, tzinfo=timezone.utc)),
        ("order:727:2024-11-15T16:02:10:created", "order.created",
         datetime(2024, 11, 15, 16, 2, 10, tzinfo=timezone.utc)),
        ("order:727:2024-11-15T16:20:31:updated", "order.updated",
         datetime(2024, 11, 15, 16, 20, 31, tzinfo=timezone.utc)),
        ("order:727:2024-11-15T17:05:00:updated", "order.updated",
         datetime(2024, 11, 15, 17, 5, tzinfo=timezone.utc)),
        ("order:727:2024-11-18T13:30:44:updated", "order.updated",
         datetime(2024, 11, 18, 13, 30, 44, tzinfo=timezone.utc)),
    ]
    assert [json.loads(body)["status"] for _, _, body, _, _ in rows[1:]] == [
        "pending", "processing", "cancelled", "refunded"]
    assert rows[4][2] == fixture_body("order_refunded")


def test_the_same_order_state_delivered_twice_is_one_record(app):
    """Delivery-ID changes every second, so it must not be part of the key."""
    client = app.test_client()
    body = fixture_body("order_processing")
    first = post(client, body, wc_headers("order.updated", delivery_id="a3b1c9e0d8f7a6b5c4d3e2f1a0b9c8d7"))
    again = post(client, body, wc_headers("order.updated", delivery_id="f0e1d2c3b4a5968778695a4b3c2d1e0f"))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 1}
    [(key, _, _, _, headers)] = stored(app)
    assert key == "order:727:2024-11-15T16:20:31:updated"
    assert headers["x-wc-webhook-delivery-id"] == "a3b1c9e0d8f7a6b5c4d3e2f1a0b9c8d7"


def test_a_deletion_carries_only_the_id(app):
    body = php_json({"id": 727})
    response = post(app.test_client(), body, wc_headers("order.deleted"))
    assert response.status_code == 202
    assert [(key, topic, stored_body, occurred_at) for key, topic, stored_body, occurred_at, _ in stored(app)] == [
        ("order:727::deleted", "order.deleted", b'{"id":727}', None)]


def test_the_setup_ping_is_200_with_an_empty_body_and_stores_nothing(app):
    client = app.test_client()
    ping = client.post("/webhooks/woocommerce", data=b"webhook_id=12", headers={"User-Agent": USER_AGENT},
                       content_type="application/x-www-form-urlencoded")
    assert (ping.status_code, ping.get_data()) == (200, b"")
    not_a_ping = client.post("/webhooks/woocommerce", data=b"webhook_id=12&topic=order.created",
                             content_type="application/x-www-form-urlencoded")
    assert not_a_ping.status_code == 401
    assert stored(app) == []


def test_bad_signatures_are_401_and_store_nothing(app):
    client = app.test_client()
    body = fixture_body("order_processing")
    headers = wc_headers("order.updated")

    wrong_secret = post(client, body, headers, secret="another-webhook-secret")
    assert wrong_secret.status_code == 401
    assert wrong_secret.get_json()["error"] == {
        "code": "bad_signature", "message": "X-WC-Webhook-Signature does not match the body"}
    assert SECRET not in wrong_secret.get_data(as_text=True)

    tampered = body.replace(b'"total":"29.35"', b'"total":"0.01"')
    assert tampered != body
    assert post(client, tampered, dict(headers, **{"X-WC-Webhook-Signature": wc_signature(body)})).status_code == 401

    missing = post(client, body, headers, secret=None)
    assert missing.status_code == 401
    assert missing.get_json()["error"]["message"] == "missing X-WC-Webhook-Signature header"
    assert stored(app) == []


def test_garbage_is_401_unsigned_and_400_signed(app):
    client = app.test_client()
    headers = wc_headers("order.updated")
    assert post(client, b"<html>oops</html>", dict(headers, **{"X-WC-Webhook-Signature": "AAAA"})).status_code == 401
    for body in (b"<html>oops</html>", b"[727]", php_json({"action": "woocommerce_payment_complete", "arg": 727}),
                 php_json({"id": None})):
        response = post(client, body, headers)
        assert response.status_code == 400, body
        assert response.get_json()["error"] == {"code": "bad_payload",
                                                "message": "body is not a JSON object with an id"}
    no_topic = {name: value for name, value in headers.items() if name != "X-WC-Webhook-Topic"}
    assert post(client, fixture_body("order_processing"), no_topic).get_json()["error"]["message"] == (
        "missing X-WC-Webhook-Topic header")
    assert stored(app) == []


def test_a_secret_with_html_entities_is_decoded_as_wordpress_does(make_woo):
    """WooCommerce signs with ``wp_specialchars_decode($secret, ENT_QUOTES)``."""
    secret = "s3cr&amp;t&lt;&#039;&#x27;&quot;&#38;&#0060;&copy;"
    app = make_woo(secret=secret)
    body = fixture_body("customer_created")
    key = "s3cr&t<''\"&<&copy;".encode()
    signature = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
    response = post(app.test_client(), body, dict(wc_headers("customer.created"),
                                                  **{"X-WC-Webhook-Signature": signature}))
    assert response.status_code == 202


def test_settings_require_the_secret_and_default_the_rest(make_woo, make_app):
    from hub.config import ConfigError

    app = make_woo(store_url="https://example.com")
    _, settings = app.extensions["tributary"].connector("woocommerce")
    assert settings["store_url"] == "https://example.com"
    assert (settings["consumer_key"], settings["consumer_secret"]) == (None, None)
    with pytest.raises(ConfigError) as info:
        make_app(connectors={"woocommerce": {"enabled": True, "store_url": "not a url"}},
                 plugins=["tests.plugins.echo", "connectors.woocommerce"])
    assert info.value.problems == {"connectors.woocommerce.webhook_secret": "Missing data for required field.",
                                   "connectors.woocommerce.store_url": "Not a valid URL."}
