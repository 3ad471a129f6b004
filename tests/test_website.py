"""The website source: Standard Webhooks signatures, checked against the official library."""
import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from hub import signing
from hub.models import InboxRecord

SECRET = "whsec_" + base64.b64encode(b"website-test-secret-32-bytes-long").decode()


@pytest.fixture
def app(make_app):
    app = make_app(connectors={"echo": {"enabled": False},
                               "website": {"enabled": True, "webhook_secret": SECRET}})
    app.extensions["tributary"].queue.signal_drain = lambda: False
    return app


def send(client, payload, msg_id="msg_1", when=None, secret=SECRET, body=None):
    when = when or datetime.now(timezone.utc)
    body = body if body is not None else json.dumps(payload)
    signature = Webhook(secret).sign(msg_id, when, body)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(when.timestamp())),
               "webhook-signature": signature}
    return client.post("/webhooks/website", data=body, headers=headers, content_type="application/json")


def stored(app):
    with app.extensions["tributary"].session() as session:
        return [(r.key, r.topic, json.loads(r.body), r.occurred_at)
                for r in session.scalars(select(InboxRecord).order_by(InboxRecord.id))]


def test_a_signed_batch_becomes_one_record_per_event(app):
    events = [
        {"id": "ev-1", "type": "page.viewed", "anonymous_id": "anon-7", "timestamp": "2026-11-01T10:00:00Z",
         "properties": {"url": "https://shop.example.com/"}},
        {"type": "identify", "anonymous_id": "anon-7", "email": "Ana@Example.com"},
    ]
    response = send(app.test_client(), {"events": events})
    assert response.status_code == 202
    assert stored(app) == [
        ("ev-1", "page.viewed", events[0], datetime(2026, 11, 1, 10, tzinfo=timezone.utc)),
        ("msg_1:1", "identify", events[1], None),
    ]


def test_our_signer_matches_the_official_library():
    when = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
    ours = signing.sign(SECRET, "msg_9", int(when.timestamp()), b'{"a":1}')
    assert ours == Webhook(SECRET).sign("msg_9", when, '{"a":1}')
    headers = {"webhook-id": "msg_9", "webhook-timestamp": str(int(when.timestamp())), "webhook-signature": ours}
    assert signing.verify(SECRET, headers.get, b'{"a":1}', now=when.timestamp()) == "msg_9"


def test_bad_signatures_are_401_and_store_nothing(app):
    client = app.test_client()
    payload = {"events": [{"type": "page.viewed"}]}
    other = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()
    assert send(client, payload, secret=other).status_code == 401
    stale = send(client, payload, when=datetime.now(timezone.utc) - timedelta(minutes=6))
    assert stale.get_json()["error"] == {"code": "bad_signature", "message": "webhook-timestamp outside the tolerance"}
    future = send(client, payload, when=datetime.now(timezone.utc) + timedelta(minutes=6))
    assert future.status_code == 401
    missing = client.post("/webhooks/website", data=json.dumps(payload))
    assert missing.get_json()["error"]["message"] == (
        "missing webhook-id, webhook-timestamp or webhook-signature header")
    body = json.dumps(payload)
    when = datetime.now(timezone.utc)
    tampered = client.post("/webhooks/website", data=body + " ", headers={
        "webhook-id": "m", "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("m", when, body)})
    assert tampered.status_code == 401
    assert stored(app) == []


def test_a_rotated_key_list_matches_any_signature(app):
    when = datetime.now(timezone.utc)
    body = json.dumps({"events": [{"id": "r1", "type": "form.submitted"}]})
    good = Webhook(SECRET).sign("m2", when, body)
    response = app.test_client().post("/webhooks/website", data=body, headers={
        "webhook-id": "m2", "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": f"v1,AAAA v1a,xyz {good}"})
    assert response.status_code == 202


def test_unparseable_batches_are_400(app):
    client = app.test_client()
    assert send(client, None, body="{oops").get_json()["error"]["message"] == "body is not JSON"
    assert send(client, {"events": []}).status_code == 400
    wrong_type = send(client, {"events": [{"type": "page.viewed"}, {"type": "buy"}]})
    assert wrong_type.status_code == 400
    assert wrong_type.get_json()["error"]["message"] == (
        "events[1]: type must be one of page.viewed, form.submitted, identify")
    assert stored(app) == []


def test_the_secret_must_be_a_whsec_key(make_app):
    from hub.config import ConfigError

    with pytest.raises(ConfigError) as info:
        make_app(connectors={"website": {"enabled": True, "webhook_secret": "whsec_!!notbase64"}})
    assert info.value.problems == {
        "connectors.website.webhook_secret": "not a whsec_ secret: the part after whsec_ must be base64"}
