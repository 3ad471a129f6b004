"""The Stripe connector: ``Stripe-Signature`` signed with Stripe's own library, verified by ours.

Every request here is signed with ``stripe.WebhookSignature.generate_signature_header``
(stripe-python >= 16); our own signer is checked against ``stripe.Webhook.construct_event``.
"""
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import stripe

from connectors import stripe as connector
from tests.conftest import inbox_rows as stored

SECRET = "whsec_8f2cQk3zWb1Xy7Lm4Np0Rs6Tu9Vw2Ya5"
OTHER_SECRET = "whsec_0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0u"
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"


@pytest.fixture
def make_stripe(make_app):
    def factory(**settings):
        app = make_app(connectors={"echo": {"enabled": False},
                                   "stripe": {"enabled": True, "webhook_secret": SECRET, **settings}},
                       plugins=["tests.plugins.echo", "connectors.stripe"])
        app.extensions["tributary"].queue.signal_drain = lambda: False
        return app

    return factory


@pytest.fixture
def app(make_stripe):
    return make_stripe()


def fixture_body(name: str) -> bytes:
    """A fixture exactly as Stripe sends it: indented JSON, UTF-8."""
    return (FIXTURES / f"{name}.json").read_bytes()


def sign(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` value made by Stripe's own library."""
    return stripe.WebhookSignature.generate_signature_header(body.decode("utf-8"), secret, timestamp=timestamp)


def post(client, body: bytes, signature: str | None = "sign"):
    headers = {"User-Agent": USER_AGENT}
    if signature == "sign":
        signature = sign(body)
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/webhooks/stripe", data=body, headers=headers,
                       content_type="application/json; charset=utf-8")


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, tz=timezone.utc)


def test_a_customer_created_event_is_stored_exactly_as_received(app):
    body = fixture_body("customer_created")
    response = post(app.test_client(), body)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    assert stored(app) == [("evt_1PqXyZ2eZvKYlo2C8a1b2c3d", "customer.created", body,
                            datetime(2024, 8, 20, 18, 53, 20, tzinfo=timezone.utc), {"user-agent": USER_AGENT})]


@pytest.mark.parametrize("fixture, key, topic, created", [
    ("customer_updated", "evt_1PqXzA2eZvKYlo2Cu7p8d9a0", "customer.updated", 1724180050),
    ("charge_succeeded", "evt_3PqY0A2eZvKYlo2C1x2y3z4w", "charge.succeeded", 1724180100),
    ("charge_failed", "evt_3PqY2C2eZvKYlo2C0f1a2i3l", "charge.failed", 1724180300),
    ("charge_refunded_jpy", "evt_3PqY3D2eZvKYlo2C5r6e7f8d", "charge.refunded", 1724181000),
    ("invoice_paid", "evt_1PqY1B2eZvKYlo2C9q8w7e6r", "invoice.paid", 1724180200),
    ("invoice_payment_failed", "evt_1PrA5F2eZvKYlo2Cf4i5l6e7", "invoice.payment_failed", 1726858700),
    ("customer_subscription_created", "evt_1PqY1C2eZvKYlo2Cs5u6b7c8", "customer.subscription.created", 1724180191),
    ("customer_subscription_deleted", "evt_1PsB6G2eZvKYlo2Cd8e9l0t1", "customer.subscription.deleted", 1727000000),
])
def test_every_subscribed_event_becomes_one_record(app, fixture, key, topic, created):
    body = fixture_body(fixture)
    assert post(app.test_client(), body).status_code == 202
    assert stored(app) == [(key, topic, body, at(created), {"user-agent": USER_AGENT})]


def test_a_jpy_charge_keeps_its_zero_decimal_amount_and_utf8_bytes(app):
    body = fixture_body("charge_refunded_jpy")
    assert "山田 花子".encode() in body
    assert post(app.test_client(), body).status_code == 202
    [(key, _, stored_body, _, _)] = stored(app)
    charge = json.loads(stored_body)["data"]["object"]
    assert (key, stored_body) == ("evt_3PqY3D2eZvKYlo2C5r6e7f8d", body)
    assert (charge["currency"], charge["amount"], charge["amount_refunded"]) == ("jpy", 5000, 5000)
    assert charge["billing_details"]["name"] == "山田 花子"


def test_a_redelivery_is_200_and_keeps_one_record(app):
    """Each attempt carries a new timestamp and signature; the event id stays the same."""
    client = app.test_client()
    body = fixture_body("invoice_paid")
    assert post(client, body, sign(body, timestamp=int(time.time()) - 60)).status_code == 202
    again = post(client, body, sign(body))
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 1}
    assert [row[0] for row in stored(app)] == ["evt_1PqY1B2eZvKYlo2C9q8w7e6r"]


def test_our_signer_is_accepted_by_the_official_library():
    body = fixture_body("charge_succeeded")
    now = int(time.time())
    header = f"t={now},v1={connector.signature(SECRET, now, body)}"
    assert header == sign(body, timestamp=now)
    event = stripe.Webhook.construct_event(body, header, SECRET)
    assert (event.id, event.type) == ("evt_3PqY0A2eZvKYlo2C1x2y3z4w", "charge.succeeded")


def test_during_a_secret_roll_any_v1_may_match(app):
    body = fixture_body("customer_updated")
    now = int(time.time())
    old = connector.signature(OTHER_SECRET, now, body)
    new = connector.signature(SECRET, now, body)
    header = f"t={now},v1={old},v1={new},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
    assert post(app.test_client(), body, header).status_code == 202
    assert [row[0] for row in stored(app)] == ["evt_1PqXzA2eZvKYlo2Cu7p8d9a0"]


def test_a_matching_signature_under_another_scheme_is_refused(app):
    """Only ``v1`` counts: a valid HMAC labelled ``v0`` must not pass (downgrade protection)."""
    body = fixture_body("charge_succeeded")
    now = int(time.time())
    response = post(app.test_client(), body, f"t={now},v0={connector.signature(SECRET, now, body)}")
    assert response.status_code == 401
    assert response.get_json()["error"] == {
        "code": "bad_signature", "message": "no v1 signature in Stripe-Signature header"}
    assert stored(app) == []


def test_bad_signatures_are_401_and_store_nothing(app):
    client = app.test_client()
    body = fixture_body("charge_succeeded")

    wrong_secret = post(client, body, sign(body, secret=OTHER_SECRET))
    assert wrong_secret.status_code == 401
    assert wrong_secret.get_json()["error"] == {
        "code": "bad_signature", "message": "no v1 signature in Stripe-Signature matches the body"}
    assert SECRET not in wrong_secret.get_data(as_text=True)

    tampered = body.replace(b'"amount": 2000', b'"amount": 1')
    assert tampered != body
    assert post(client, tampered, sign(body)).status_code == 401

    missing = post(client, body, None)
    assert missing.get_json()["error"]["message"] == "missing Stripe-Signature header"
    assert stored(app) == []


@pytest.mark.parametrize("header", [
    "garbage",
    "t=,v1=abc",
    "v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
    "t=1724180100x,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
    "t=1,t=2,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
    "t=" + "9" * 5000 + ",v1=ab",
])
def test_malformed_headers_are_401(app, header):
    response = post(app.test_client(), fixture_body("charge_succeeded"), header)
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "malformed Stripe-Signature header"
    assert stored(app) == []


def test_a_header_without_v1_is_401(app):
    response = post(app.test_client(), fixture_body("charge_succeeded"), f"t={int(time.time())}")
    assert response.get_json()["error"]["message"] == "no v1 signature in Stripe-Signature header"


@pytest.mark.parametrize("offset", [-301, 301, -86400, 86400])
def test_timestamps_outside_the_tolerance_are_401_past_and_future(app, offset):
    body = fixture_body("customer_created")
    response = post(app.test_client(), body, sign(body, timestamp=int(time.time()) + offset))
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "Stripe-Signature timestamp outside the tolerance"
    assert stored(app) == []


def test_the_tolerance_is_configurable(make_stripe):
    app = make_stripe(tolerance_seconds=900)
    client = app.test_client()
    body = fixture_body("customer_created")
    assert post(client, body, sign(body, timestamp=int(time.time()) - 600)).status_code == 202
    late = fixture_body("customer_updated")
    assert post(client, late, sign(late, timestamp=int(time.time()) - 1000)).status_code == 401
    assert [row[0] for row in stored(app)] == ["evt_1PqXyZ2eZvKYlo2C8a1b2c3d"]


def test_unparseable_signed_bodies_are_400(app):
    client = app.test_client()
    assert post(client, b"{oops").get_json()["error"] == {"code": "bad_payload", "message": "body is not JSON"}
    assert post(client, b'["evt_1"]').get_json()["error"]["message"] == "body is not a JSON object"
    no_id = post(client, b'{"object": "event", "type": "charge.succeeded"}')
    assert (no_id.status_code, no_id.get_json()["error"]["message"]) == (400, "event has no id")
    no_type = post(client, b'{"id": "evt_1", "object": "event"}')
    assert (no_type.status_code, no_type.get_json()["error"]["message"]) == (400, "event has no type")
    assert stored(app) == []


def test_an_unsigned_garbage_body_is_401(app):
    assert post(app.test_client(), b"\x00\xff not json", "t=1,v1=00").status_code == 401
    assert stored(app) == []


def test_a_thin_event_is_dated_by_its_iso_created(app):
    body = json.dumps({"id": "evt_test_65R9Ijk8dHdUuPSEJ", "object": "v2.core.event",
                       "type": "v1.billing.meter.error_report_triggered", "livemode": False,
                       "created": "2024-09-17T06:20:52.246Z",
                       "related_object": {"id": "mtr_test_61R9Ijk8d", "type": "billing.meter",
                                          "url": "/v1/billing/meters/mtr_test_61R9Ijk8d"}}).encode()
    assert post(app.test_client(), body).status_code == 202
    assert stored(app) == [("evt_test_65R9Ijk8dHdUuPSEJ", "v1.billing.meter.error_report_triggered", body,
                            datetime(2024, 9, 17, 6, 20, 52, 246000, tzinfo=timezone.utc),
                            {"user-agent": USER_AGENT})]


def test_the_secret_is_required_and_must_be_a_whsec_string(make_app):
    from hub.config import ConfigError

    plugins = ["tests.plugins.echo", "connectors.stripe"]
    with pytest.raises(ConfigError) as missing:
        make_app(connectors={"stripe": {"enabled": True}}, plugins=plugins)
    assert missing.value.problems == {"connectors.stripe.webhook_secret": "Missing data for required field."}
    with pytest.raises(ConfigError) as wrong:
        make_app(connectors={"stripe": {"enabled": True, "webhook_secret": "sk_test_123"}}, plugins=plugins)
    assert wrong.value.problems == {
        "connectors.stripe.webhook_secret": "must be the endpoint's whole signing secret, starting with whsec_"}
    app = make_app(connectors={"stripe": {"enabled": True, "webhook_secret": SECRET}}, plugins=plugins)
    assert app.extensions["tributary"].config.connectors["stripe"] == {
        "enabled": True, "api_base": None, "webhook_secret": SECRET, "api_key": None, "tolerance_seconds": 300}
