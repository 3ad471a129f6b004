"""The SendGrid connector: ECDSA P-256/SHA-256 over timestamp + raw body, one record per event.

SendGrid keeps its private key, so each test generates a P-256 key pair, exports the
public half as the base64 DER "verification key" SendGrid shows, and signs the way
SendGrid does. The official ``sendgrid`` library's ``EventWebhook`` verifier must accept
exactly what the connector accepts.
"""
import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from connectors.sendgrid import SendGrid
from hub.config import ConfigError
from hub.connector import SignatureError, WebhookRequest
from tests.conftest import inbox_rows as stored

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sendgrid"
EVENTS = (FIXTURES / "events.json").read_bytes()
STAMP = "1700000500"


def verification_key(private_key) -> str:
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


PRIVATE = ec.generate_private_key(ec.SECP256R1())
OTHER = ec.generate_private_key(ec.SECP256R1())
PUBLIC = verification_key(PRIVATE)


def sign(body: bytes, stamp: str = STAMP, key=PRIVATE) -> str:
    return base64.b64encode(key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


@pytest.fixture
def make_sendgrid(make_app):
    def factory(**settings):
        app = make_app(connectors={"echo": {"enabled": False},
                                   "sendgrid": {"enabled": True, "verification_key": PUBLIC, **settings}},
                       plugins=["tests.plugins.echo", "connectors.sendgrid"])
        app.extensions["tributary"].queue.signal_drain = lambda: False
        return app

    return factory


@pytest.fixture
def app(make_sendgrid):
    return make_sendgrid()


def send(client, body: bytes, stamp: str = STAMP, key=PRIVATE, **override):
    headers = {EventWebhookHeader.SIGNATURE: sign(body, stamp, key), EventWebhookHeader.TIMESTAMP: stamp}
    headers.update(override)
    headers = {name: value for name, value in headers.items() if value is not None}
    return client.post("/webhooks/sendgrid", data=body, headers=headers, content_type="application/json")


def compact(event: dict) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def test_a_signed_batch_becomes_one_record_per_event(app):
    response = send(app.test_client(), EVENTS)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 10, "duplicates": 0}
    events = json.loads(EVENTS)
    kept = {"x-twilio-email-event-webhook-timestamp": STAMP}
    assert stored(app) == [
        (event["sg_event_id"], event["event"], compact(event),
         datetime.fromtimestamp(event["timestamp"], tz=timezone.utc), kept) for event in events]
    assert [row[1] for row in stored(app)] == [
        "processed", "deferred", "delivered", "open", "click", "bounce", "dropped", "spamreport",
        "unsubscribe", "group_unsubscribe"]
    assert stored(app)[3][:2] == ("dGVzdC1vcGVuLWV2ZW50LTAwMQ", "open")
    assert stored(app)[3][3] == datetime(2023, 11, 14, 22, 15, tzinfo=timezone.utc)


def test_the_official_library_accepts_exactly_what_we_accept():
    official = EventWebhook(public_key=PUBLIC)
    ours = SendGrid()
    settings = {"verification_key": PUBLIC}

    def request(body: bytes, signature: str, stamp: str = STAMP) -> WebhookRequest:
        return WebhookRequest(method="POST", query={}, body=body, headers={
            EventWebhookHeader.SIGNATURE: signature, EventWebhookHeader.TIMESTAMP: stamp})

    signature = sign(EVENTS)
    assert official.verify_signature(EVENTS.decode(), signature, STAMP) is True
    assert ours.verify(request(EVENTS, signature), settings) is None
    for body, forged, stamp in ((EVENTS + b" ", signature, STAMP), (EVENTS, sign(EVENTS, key=OTHER), STAMP),
                                (EVENTS, signature, "1700000501")):
        assert official.verify_signature(body.decode(), forged, stamp) is False
        with pytest.raises(SignatureError, match="does not match"):
            ours.verify(request(body, forged, stamp), settings)


def test_redelivery_with_a_new_timestamp_is_a_duplicate(app):
    client = app.test_client()
    assert send(client, EVENTS).status_code == 202
    again = send(client, EVENTS, stamp="1700003600")
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 10}
    events = json.loads(EVENTS)
    fresh = dict(events[0], sg_event_id="bmV3LXByb2Nlc3NlZC0wMDI", timestamp=1700009999)
    mixed = send(client, json.dumps([events[1], fresh]).encode())
    assert mixed.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 1}
    assert stored(app)[-1][:2] == ("bmV3LXByb2Nlc3NlZC0wMDI", "processed")


def test_the_timestamp_is_not_held_to_a_window(app):
    """SendGrid documents no replay window and retries for up to 24 hours."""
    response = send(app.test_client(), EVENTS, stamp="1600000000")
    assert response.status_code == 202


def test_forged_requests_are_401_and_store_nothing(app):
    client = app.test_client()
    mismatch = "X-Twilio-Email-Event-Webhook-Signature does not match"
    missing = "missing X-Twilio-Email-Event-Webhook-Signature or X-Twilio-Email-Event-Webhook-Timestamp header"
    cases = [
        (send(client, EVENTS, key=OTHER), mismatch),
        (client.post("/webhooks/sendgrid", data=EVENTS.replace(b"jane.doe", b"eve.doe"), headers={
            EventWebhookHeader.SIGNATURE: sign(EVENTS), EventWebhookHeader.TIMESTAMP: STAMP}), mismatch),
        (send(client, EVENTS, **{EventWebhookHeader.TIMESTAMP: "1700000501"}), mismatch),
        (send(client, EVENTS, **{EventWebhookHeader.SIGNATURE: sign(EVENTS + STAMP.encode(), stamp="")}), mismatch),
        (send(client, EVENTS, **{EventWebhookHeader.SIGNATURE: "not base64!"}),
         "X-Twilio-Email-Event-Webhook-Signature is not base64"),
        (send(client, EVENTS, **{EventWebhookHeader.SIGNATURE: None}), missing),
        (send(client, EVENTS, **{EventWebhookHeader.TIMESTAMP: None}), missing),
    ]
    for response, message in cases:
        assert response.status_code == 401
        assert response.get_json() == {"error": {"code": "bad_signature", "message": message}}
    assert stored(app) == []


def test_an_event_without_sg_event_id_is_keyed_by_its_content(app):
    event = {"email": "jane.doe@example.com", "timestamp": 1700000100, "event": "open",
             "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"}
    client = app.test_client()
    assert send(client, json.dumps([event]).encode()).status_code == 202
    assert send(client, json.dumps([event], indent=2).encode()).status_code == 200
    assert stored(app) == [("sha256:" + hashlib.sha256(compact(event)).hexdigest(), "open", compact(event),
                            datetime(2023, 11, 14, 22, 15, tzinfo=timezone.utc),
                            {"x-twilio-email-event-webhook-timestamp": STAMP})]


@pytest.mark.parametrize("payload, message", [
    (b"not json", "body is not JSON"),
    (b'{"event": "open", "sg_event_id": "x"}', "expected a JSON array with at least one event"),
    (b"[]", "expected a JSON array with at least one event"),
    (b'[{"event": "open", "sg_event_id": "a"}, 7]', "[1] is not an object"),
    (b'[{"sg_event_id": "a", "timestamp": 1700000000}]', "[0].event must be a non-empty string"),
    (b'[{"event": "open", "sg_event_id": 12}]', "[0].sg_event_id must be a string of 1 to 255 characters"),
])
def test_signed_but_unparseable_batches_are_400(app, payload, message):
    response = send(app.test_client(), payload)
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_payload", "message": message}}
    assert stored(app) == []


def test_a_pem_armoured_key_is_accepted(make_sendgrid):
    pem = "-----BEGIN PUBLIC KEY-----\n" + PUBLIC + "\n-----END PUBLIC KEY-----\n"
    app = make_sendgrid(verification_key=pem)
    assert send(app.test_client(), EVENTS).status_code == 202


def test_the_verification_key_must_be_a_p256_public_key(make_app):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p384 = ec.generate_private_key(ec.SECP384R1())
    for value, reason in (
        ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE!!", "not a base64 DER public key (copy the verification key "
                                                  "from Mail Settings)"),
        (base64.b64encode(b"not a key").decode(), "not a base64 DER public key (copy the verification key "
                                                  "from Mail Settings)"),
        (verification_key(rsa_key), "not an ECDSA P-256 public key"),
        (verification_key(p384), "not an ECDSA P-256 public key"),
    ):
        with pytest.raises(ConfigError) as info:
            make_app(connectors={"sendgrid": {"enabled": True, "verification_key": value}},
                     plugins=["tests.plugins.echo", "connectors.sendgrid"])
        assert info.value.problems == {"connectors.sendgrid.verification_key": reason}
