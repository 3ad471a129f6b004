"""The PayPal connector: RSA signatures checked with the certificate at ``PAYPAL-CERT-URL``.

Nothing official can produce a PayPal signature (PayPal keeps the private key), so each
test makes its own RSA key and self-signed certificate with ``cryptography``, serves the
certificate at an allowed PayPal URL with ``responses`` and signs the documented string
``transmission_id|transmission_time|webhook_id|crc32(body)`` with SHA256withRSA.
"""
import base64
import json
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from connectors import paypal as connector
from tests.conftest import inbox_rows as stored

WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8"
TRANSMISSION_ID = "69cd13f0-d67a-11e5-baa3-778b53f4ae55"
TRANSMISSION_TIME = "2024-05-01T12:00:06Z"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "paypal"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key=KEY, common_name="messageverificationcerts.paypal.com",
                valid_from: timedelta = timedelta(days=-30), valid_until: timedelta = timedelta(days=365)) -> bytes:
    """A self-signed PEM certificate for ``key``, valid from/until the given offsets to now."""
    now = datetime.now(timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PayPal, Inc."),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + valid_from).not_valid_after(now + valid_until)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def chain(leaf: bytes) -> bytes:
    """The leaf followed by an issuer certificate, as a certificate URL serves a chain."""
    return leaf + certificate(OTHER_KEY, common_name="DigiCert SHA2 Test CA")


@pytest.fixture(autouse=True)
def fresh_certificate_cache():
    connector.fetch_certificate.cache_clear()
    yield
    connector.fetch_certificate.cache_clear()


@pytest.fixture
def paypal_api():
    """PayPal's certificate host, served by ``responses``; any other request fails."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(CERT_URL, body=chain(certificate()), content_type="application/x-pem-file")
        yield mock


@pytest.fixture
def make_paypal(make_app):
    def factory(**settings):
        app = make_app(connectors={"echo": {"enabled": False},
                                   "paypal": {"enabled": True, "webhook_id": WEBHOOK_ID, **settings}},
                       plugins=["tests.plugins.echo", "connectors.paypal"])
        app.extensions["tributary"].queue.signal_drain = lambda: False
        return app

    return factory


@pytest.fixture
def app(make_paypal, paypal_api):
    return make_paypal()


def fixture_body(name: str) -> bytes:
    """A fixture as PayPal sends it: compact JSON."""
    payload = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(body: bytes, transmission_id=TRANSMISSION_ID, transmission_time=TRANSMISSION_TIME,
         webhook_id=WEBHOOK_ID, key=KEY) -> str:
    """``PAYPAL-TRANSMISSION-SIG`` as PayPal computes it."""
    message = f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}"
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def paypal_headers(body: bytes, cert_url=CERT_URL, transmission_id=TRANSMISSION_ID,
                   transmission_time=TRANSMISSION_TIME, **sign_options) -> dict:
    return {"PAYPAL-TRANSMISSION-ID": transmission_id, "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": sign(body, transmission_id, transmission_time, **sign_options),
            "PAYPAL-CERT-URL": cert_url, "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "User-Agent": "PayPal/AUHD-214.0-58351622"}


def post(client, body: bytes, headers: dict):
    return client.post("/webhooks/paypal", data=body, headers=headers, content_type="application/json")


def test_a_capture_completed_event_is_stored_exactly_as_received(app, paypal_api):
    body = fixture_body("payment_capture_completed")
    response = post(app.test_client(), body, paypal_headers(body))
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    assert stored(app) == [(
        "WH-2WR32451HC0233532-67976317FL4543714", "PAYMENT.CAPTURE.COMPLETED", body,
        datetime(2024, 5, 1, 12, 0, 5, 123000, tzinfo=timezone.utc),
        {"paypal-transmission-id": TRANSMISSION_ID, "paypal-transmission-time": TRANSMISSION_TIME,
         "paypal-cert-url": CERT_URL, "paypal-auth-algo": "SHA256withRSA"},
    )]
    assert [call.request.url for call in paypal_api.calls] == [CERT_URL]


@pytest.mark.parametrize("fixture, key, topic, occurred_at", [
    ("payment_capture_refunded", "WH-1GE84257G0350133W-6RW800890C634293G", "PAYMENT.CAPTURE.REFUNDED",
     datetime(2024, 5, 3, 9, 15, 41, 870000, tzinfo=timezone.utc)),
    ("checkout_order_approved", "WH-COC11055RA711503B-4YM959094A144403T", "CHECKOUT.ORDER.APPROVED",
     datetime(2024, 5, 1, 11, 59, 48, tzinfo=timezone.utc)),
    ("checkout_order_completed", "WH-55TG7562XN2588878-8YH955435R661687G", "CHECKOUT.ORDER.COMPLETED",
     datetime(2024, 5, 1, 12, 0, 6, 511000, tzinfo=timezone.utc)),
])
def test_every_subscribed_event_becomes_one_record(app, fixture, key, topic, occurred_at):
    body = fixture_body(fixture)
    assert post(app.test_client(), body, paypal_headers(body)).status_code == 202
    [(stored_key, stored_topic, stored_body, stored_at, headers)] = stored(app)
    assert (stored_key, stored_topic, stored_body, stored_at) == (key, topic, body, occurred_at)
    assert headers["paypal-transmission-id"] == TRANSMISSION_ID


def test_a_redelivery_is_200_keeps_one_record_and_reuses_the_certificate(app, paypal_api):
    """A retry is a new transmission (id, time, signature) of the same event id."""
    client = app.test_client()
    body = fixture_body("checkout_order_approved")
    assert post(client, body, paypal_headers(body)).status_code == 202
    retry = paypal_headers(body, transmission_id="b2d4e6f0-d67a-11e5-baa3-778b53f4ae55",
                           transmission_time="2024-05-01T12:20:06Z")
    again = post(client, body, retry)
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 1}
    assert [row[0] for row in stored(app)] == ["WH-COC11055RA711503B-4YM959094A144403T"]
    assert len(paypal_api.calls) == 1


@pytest.mark.parametrize("cert_url", [
    "https://api-m.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://api.sandbox.paypal.com:443/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://API-M.PAYPAL.COM/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
])
def test_every_paypal_api_host_is_allowed(app, paypal_api, cert_url):
    paypal_api.get(cert_url, body=certificate())
    body = fixture_body("payment_capture_completed")
    assert post(app.test_client(), body, paypal_headers(body, cert_url=cert_url)).status_code == 202
    assert len(paypal_api.calls) == 1


@pytest.mark.parametrize("cert_url", [
    "https://evil.example/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "http://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://api.paypal.com@evil.example/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://user:pass@api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://api.paypal.com:8443/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://www.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://evil.example/?host=api.paypal.com",
    "https://api.paypal.com\\@evil.example/cert",
    "https://api.pay\tpal.com/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "https://127.0.0.1/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
    "file:///etc/passwd",
    "https://api.paypal.com",
])
def test_a_forged_certificate_host_is_401_without_any_download(app, paypal_api, cert_url):
    forged = certificate(OTHER_KEY)
    for url in ("https://evil.example/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8",
                "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-360caa42-fca2a594-7a8abba8"):
        paypal_api.get(url, body=forged)
    body = fixture_body("payment_capture_completed")
    response = post(app.test_client(), body, paypal_headers(body, cert_url=cert_url, key=OTHER_KEY))
    assert response.status_code == 401
    assert response.get_json()["error"] == {
        "code": "bad_signature", "message": "PAYPAL-CERT-URL is not a PayPal certificate URL"}
    assert len(paypal_api.calls) == 0
    assert stored(app) == []


def test_a_tampered_body_is_401(app):
    body = fixture_body("payment_capture_completed")
    tampered = body.replace(b'"value":"20.00"', b'"value":"2000.00"', 1)
    assert tampered != body
    response = post(app.test_client(), tampered, paypal_headers(body))
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "PAYPAL-TRANSMISSION-SIG does not match"
    assert stored(app) == []


def test_a_signature_for_another_webhook_id_is_401(app):
    """The simulator signs with the literal ``WEBHOOK_ID``; another app's id must not pass either."""
    client = app.test_client()
    body = fixture_body("checkout_order_completed")
    for other in ("WEBHOOK_ID", "1JE4291016473214C"):
        response = post(client, body, paypal_headers(body, webhook_id=other))
        assert response.get_json()["error"]["message"] == "PAYPAL-TRANSMISSION-SIG does not match"
    assert stored(app) == []


def test_changed_transmission_headers_are_401(app):
    client = app.test_client()
    body = fixture_body("payment_capture_refunded")
    other_id = dict(paypal_headers(body), **{"PAYPAL-TRANSMISSION-ID": "00000000-d67a-11e5-baa3-778b53f4ae55"})
    other_time = dict(paypal_headers(body), **{"PAYPAL-TRANSMISSION-TIME": "2024-05-01T12:00:07Z"})
    assert post(client, body, other_id).status_code == 401
    assert post(client, body, other_time).status_code == 401
    assert stored(app) == []


def test_a_signature_from_another_key_is_401(app):
    body = fixture_body("payment_capture_completed")
    response = post(app.test_client(), body, paypal_headers(body, key=OTHER_KEY))
    assert response.get_json()["error"]["message"] == "PAYPAL-TRANSMISSION-SIG does not match"
    assert stored(app) == []


@pytest.mark.parametrize("valid_from, valid_until", [
    (timedelta(days=-400), timedelta(days=-1)),
    (timedelta(days=1), timedelta(days=400)),
])
def test_an_expired_or_future_certificate_is_401(app, paypal_api, valid_from, valid_until):
    url = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-0ld0ld00"
    paypal_api.get(url, body=certificate(valid_from=valid_from, valid_until=valid_until))
    body = fixture_body("payment_capture_completed")
    response = post(app.test_client(), body, paypal_headers(body, cert_url=url))
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "the PayPal certificate is expired or not yet valid"
    assert stored(app) == []


def test_a_certificate_not_issued_to_paypal_is_401(app, paypal_api):
    url = "https://api.paypal.com/v1/notifications/certs/CERT-not-paypal"
    paypal_api.get(url, body=certificate(common_name="evil.example"))
    body = fixture_body("payment_capture_completed")
    response = post(app.test_client(), body, paypal_headers(body, cert_url=url))
    assert response.get_json()["error"]["message"] == "the certificate at PAYPAL-CERT-URL is not issued to PayPal"
    assert stored(app) == []


@pytest.mark.parametrize("answer", [
    {"status": 500, "body": "upstream error"},
    {"status": 302, "headers": {"Location": "https://evil.example/cert.pem"}},
    {"status": 200, "body": "<html>not a certificate</html>"},
    {"status": 200, "body": b"x" * (70 * 1024)},
    {"body": requests.ConnectionError("connection refused")},
])
def test_a_failed_certificate_download_is_401_and_is_not_cached(app, paypal_api, answer):
    url = "https://api.paypal.com/v1/notifications/certs/CERT-flaky"
    paypal_api.get(url, **answer)
    client = app.test_client()
    body = fixture_body("checkout_order_approved")
    response = post(client, body, paypal_headers(body, cert_url=url))
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == "could not fetch the PayPal certificate"
    assert stored(app) == []
    paypal_api.replace(responses.GET, url, body=certificate())
    assert post(client, body, paypal_headers(body, cert_url=url)).status_code == 202
    assert [call.request.url for call in paypal_api.calls] == [url, url]


def test_missing_headers_are_401(app, paypal_api):
    client = app.test_client()
    body = fixture_body("payment_capture_completed")
    bare = post(client, body, {})
    assert bare.get_json()["error"]["message"] == (
        "missing PAYPAL-TRANSMISSION-ID, PAYPAL-TRANSMISSION-TIME, PAYPAL-TRANSMISSION-SIG, "
        "PAYPAL-CERT-URL, PAYPAL-AUTH-ALGO headers")
    for name in ("PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL"):
        headers = paypal_headers(body)
        del headers[name]
        response = post(client, body, headers)
        assert (response.status_code, response.get_json()["error"]["message"]) == (401, f"missing {name} header")
    assert len(paypal_api.calls) == 0
    assert stored(app) == []


def test_another_algorithm_or_a_non_base64_signature_is_401(app):
    client = app.test_client()
    body = fixture_body("payment_capture_completed")
    sha1 = post(client, body, dict(paypal_headers(body), **{"PAYPAL-AUTH-ALGO": "SHA1withRSA"}))
    assert sha1.get_json()["error"]["message"] == "PAYPAL-AUTH-ALGO must be SHA256withRSA"
    garbled = post(client, body, dict(paypal_headers(body), **{"PAYPAL-TRANSMISSION-SIG": "not base64!"}))
    assert garbled.get_json()["error"]["message"] == "PAYPAL-TRANSMISSION-SIG is not base64"
    assert stored(app) == []


def test_unparseable_signed_bodies_are_400(app):
    client = app.test_client()
    for body, message in ((b"{oops", "body is not JSON"), (b"[]", "body is not a JSON object"),
                          (b'{"event_type":"PAYMENT.CAPTURE.COMPLETED"}', "event has no id"),
                          (b'{"id":"WH-1"}', "event has no event_type")):
        response = post(client, body, paypal_headers(body))
        assert (response.status_code, response.get_json()["error"]) == (
            400, {"code": "bad_payload", "message": message})
    assert stored(app) == []


def test_an_unsigned_garbage_body_is_401(app):
    headers = dict(paypal_headers(b"{}"), **{"PAYPAL-TRANSMISSION-SIG": base64.b64encode(b"\x00" * 256).decode()})
    assert post(app.test_client(), b"\xff\xfe garbage", headers).status_code == 401
    assert stored(app) == []


def test_the_signed_string_uses_the_unsigned_decimal_crc32():
    assert connector.signed_string("t-1", "2024-05-01T12:00:06Z", "WH1", b"hello") == (
        b"t-1|2024-05-01T12:00:06Z|WH1|907060870")
    assert connector.signed_string("t-1", "2024-05-01T12:00:06Z", "WH1", b"{}") == (
        b"t-1|2024-05-01T12:00:06Z|WH1|2745614147")


def test_the_webhook_id_is_required(make_app):
    from hub.config import ConfigError

    plugins = ["tests.plugins.echo", "connectors.paypal"]
    with pytest.raises(ConfigError) as missing:
        make_app(connectors={"paypal": {"enabled": True}}, plugins=plugins)
    assert missing.value.problems == {"connectors.paypal.webhook_id": "Missing data for required field."}
    app = make_app(connectors={"paypal": {"enabled": True, "webhook_id": WEBHOOK_ID}}, plugins=plugins)
    assert app.extensions["tributary"].config.connectors["paypal"] == {
        "enabled": True, "api_base": None, "webhook_id": WEBHOOK_ID, "client_id": None, "client_secret": None,
        "backfill_days": 1095}
