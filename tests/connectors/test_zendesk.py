"""The Zendesk connector: base64 HMAC-SHA256 of timestamp + raw body, one record per request.

Zendesk has no official Python signer (zenpy has none), so requests are signed here with the
standard library as Zendesk documents it. The key is the signing secret used verbatim: the
tests use Zendesk's published test secret, which looks like base64 but must not be decoded.
"""
import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import inbox_rows as stored

SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
STAMP = "2024-04-17T17:18:11Z"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zendesk"
ACCOUNT = "12514403"
WEBHOOK = "01F1KRFQ6BG29CNWFR60NK5FNY"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


@pytest.fixture
def app(make_app):
    app = make_app(connectors={"echo": {"enabled": False},
                               "zendesk": {"enabled": True, "webhook_secret": SECRET}},
                   plugins=["tests.plugins.echo", "connectors.zendesk"])
    app.extensions["tributary"].queue.signal_drain = lambda: False
    return app


def zendesk_signature(body: bytes, stamp: str = STAMP, key: bytes = SECRET.encode()) -> str:
    return base64.b64encode(hmac.new(key, stamp.encode() + body, hashlib.sha256).digest()).decode()


def send(client, body: bytes, invocation: str | None = "8350205582", stamp: str = STAMP,
         key: bytes = SECRET.encode(), **override):
    headers = {"X-Zendesk-Account-Id": ACCOUNT, "X-Zendesk-Webhook-Id": WEBHOOK,
               "X-Zendesk-Webhook-Invocation-Id": invocation,
               "X-Zendesk-Webhook-Signature": zendesk_signature(body, stamp, key),
               "X-Zendesk-Webhook-Signature-Timestamp": stamp, "User-Agent": "Zendesk Webhook"}
    headers.update(override)
    headers = {name: value for name, value in headers.items() if value is not None}
    return client.post("/webhooks/zendesk", data=body, headers=headers, content_type="application/json")


def kept(invocation: str = "8350205582") -> dict:
    return {"x-zendesk-account-id": ACCOUNT, "x-zendesk-webhook-id": WEBHOOK,
            "x-zendesk-webhook-invocation-id": invocation}


def test_a_ticket_created_event_is_stored_raw_under_its_event_id(app):
    body = fixture("ticket_created")
    response = send(app.test_client(), body)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    assert stored(app) == [("cbe4028c-7239-495d-b020-f22348516046", "zen:event-type:ticket.created", body,
                            datetime(2024, 4, 17, 17, 18, 10, 891916, tzinfo=timezone.utc), kept())]


def test_status_changed_to_solved_and_comment_added_events(app):
    client = app.test_client()
    solved, comment = fixture("status_changed_solved"), fixture("comment_added")
    assert send(client, solved, invocation="8350205590").status_code == 202
    assert send(client, comment, invocation="8350205601").status_code == 202
    assert stored(app) == [
        ("6f1c8a52-3b8e-4d59-9d0a-7e2b1c4f5a90", "zen:event-type:ticket.status_changed", solved,
         datetime(2024, 4, 18, 9, 2, 44, 120394, tzinfo=timezone.utc), kept("8350205590")),
        ("9a7e4c1d-2f3b-4e5a-8c6d-1b0a9f8e7d6c", "zen:event-type:ticket.comment_added", comment,
         datetime(2024, 4, 17, 18, 1, 32, 504211, tzinfo=timezone.utc), kept("8350205601")),
    ]
    assert json.loads(stored(app)[0][2])["event"]["current"] == "SOLVED"
    assert json.loads(stored(app)[1][2])["event"]["comment"]["author"]["is_staff"] is True


def test_trigger_webhooks_are_keyed_by_invocation_with_the_template_topic(app):
    client = app.test_client()
    updated, rated = fixture("trigger_ticket_updated"), fixture("trigger_satisfaction")
    assert send(client, updated, invocation="8350205702").status_code == 202
    assert send(client, rated, invocation="8350205733").status_code == 202
    assert stored(app) == [
        ("8350205702", "ticket.updated", updated, datetime(2024, 4, 17, 18, 5, tzinfo=timezone.utc),
         kept("8350205702")),
        ("8350205733", "ticket.satisfaction_rated", rated, datetime(2024, 4, 18, 11, 47, tzinfo=timezone.utc),
         kept("8350205733")),
    ]
    assert json.loads(rated)["satisfaction_rating"] == "Good"


def test_a_trigger_body_without_topic_or_time_still_stores(app):
    body = b'{"ticket_id":"35436","requester_email":"jane.doe@example.com","status":"Pending"}'
    assert send(app.test_client(), body, invocation="8350205800").status_code == 202
    assert stored(app) == [("8350205800", None, body, None, kept("8350205800"))]


def test_redelivery_of_the_same_event_is_a_duplicate(app):
    client = app.test_client()
    body = fixture("ticket_created")
    assert send(client, body).status_code == 202
    again = send(client, body, invocation="8350209999", stamp="2024-04-17T17:19:40Z")
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 1}
    trigger = fixture("trigger_satisfaction")
    assert send(client, trigger, invocation="8350205733").status_code == 202
    assert send(client, trigger, invocation="8350205733").status_code == 200
    assert [row[0] for row in stored(app)] == ["cbe4028c-7239-495d-b020-f22348516046", "8350205733"]


def test_an_event_body_without_id_falls_back_to_the_invocation_id(app):
    payload = json.loads(fixture("comment_added"))
    del payload["id"]
    body = json.dumps(payload).encode()
    assert send(app.test_client(), body, invocation="8350205888").status_code == 202
    assert stored(app)[0][:2] == ("8350205888", "zen:event-type:ticket.comment_added")


def test_the_timestamp_is_not_held_to_a_window(app):
    """Zendesk documents no replay window; the old timestamp is still covered by the signature."""
    assert send(app.test_client(), fixture("ticket_created"), stamp="2021-03-25T05:09:27Z").status_code == 202


def test_forged_requests_are_401_and_store_nothing(app):
    client = app.test_client()
    body = fixture("ticket_created")
    mismatch = "X-Zendesk-Webhook-Signature does not match"
    missing = "missing X-Zendesk-Webhook-Signature or X-Zendesk-Webhook-Signature-Timestamp header"
    cases = [
        (send(client, body, key=b"another-signing-secret"), mismatch),
        (send(client, body, key=base64.b64decode(SECRET)), mismatch),
        (client.post("/webhooks/zendesk", data=body.replace(b"on fire", b"fine"), headers={
            "X-Zendesk-Webhook-Signature": zendesk_signature(body),
            "X-Zendesk-Webhook-Signature-Timestamp": STAMP}), mismatch),
        (send(client, body, **{"X-Zendesk-Webhook-Signature-Timestamp": "2024-04-17T17:18:12Z"}), mismatch),
        (send(client, body, **{"X-Zendesk-Webhook-Signature": None}), missing),
        (send(client, body, **{"X-Zendesk-Webhook-Signature-Timestamp": None}), missing),
    ]
    for response, message in cases:
        assert response.status_code == 401
        assert response.get_json() == {"error": {"code": "bad_signature", "message": message}}
        assert SECRET not in response.get_data(as_text=True)
    assert stored(app) == []


def test_signing_timestamp_then_body_without_separator(app):
    body = fixture("ticket_created")
    digest = hmac.new(SECRET.encode(), (STAMP + "." + body.decode()).encode(), hashlib.sha256).digest()
    response = send(app.test_client(), body, **{"X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode()})
    assert response.status_code == 401
    assert stored(app) == []


@pytest.mark.parametrize("payload, invocation, message", [
    (b"ticket_id=35436&status=Open", "8350205900", "body is not JSON (set the webhook's request format to JSON)"),
    (b'[{"ticket_id": "35436"}]', "8350205901", "body must be a JSON object"),
    (b'{"ticket_id": "35436"}', None, "no event id in the body and no X-Zendesk-Webhook-Invocation-Id header"),
    (b'{"type": "zen:event-type:ticket.created", "time": "2024-04-17T17:18:10Z"}', None,
     "no event id in the body and no X-Zendesk-Webhook-Invocation-Id header"),
    (json.dumps({"type": "zen:event-type:ticket.created", "id": "e" * 256}).encode(), None,
     "the event id is longer than 255 characters"),
])
def test_signed_but_unusable_bodies_are_400(app, payload, invocation, message):
    response = send(app.test_client(), payload, invocation=invocation)
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_payload", "message": message}}
    assert stored(app) == []
