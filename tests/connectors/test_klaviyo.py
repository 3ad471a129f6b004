"""The Klaviyo connector: hex HMAC-SHA256 of raw body + Klaviyo-Timestamp, one record per event.

Klaviyo's Python SDK (klaviyo-api) has no signature helper, so requests are signed here
with the standard library following Klaviyo's reference code: ``hmac.new(secret, body,
sha256)`` then ``.update(timestamp)``, hex digest.
"""
import copy
import hashlib
import hmac
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import inbox_rows as stored

SECRET = "klaviyo-webhook-secret-9f8e7d6c"
WEBHOOK_ID = "01KP4928STE8FKCWB6WDHZ4ZB7"
STAMP = "Mon, 13 Apr 2026 22:50:12 GMT"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "klaviyo"
BATCH = (FIXTURES / "batch.json").read_bytes()


@pytest.fixture
def app(make_app):
    app = make_app(connectors={"echo": {"enabled": False},
                               "klaviyo": {"enabled": True, "webhook_secret": SECRET}},
                   plugins=["tests.plugins.echo", "connectors.klaviyo"])
    app.extensions["tributary"].queue.signal_drain = lambda: False
    return app


def klaviyo_signature(body: bytes, stamp: str = STAMP, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256)
    digest.update(stamp.encode())
    return digest.hexdigest()


def send(client, body: bytes, stamp: str = STAMP, secret: str = SECRET, webhook_id: str = WEBHOOK_ID, **override):
    headers = {"Klaviyo-Webhook-Id": webhook_id, "Klaviyo-Timestamp": stamp,
               "Klaviyo-Signature": klaviyo_signature(body, stamp, secret)}
    headers.update(override)
    headers = {name: value for name, value in headers.items() if value is not None}
    return client.post("/webhooks/klaviyo", data=body, headers=headers, content_type="application/json")


def compact(event: dict) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def test_a_signed_batch_becomes_one_record_per_event(app):
    response = send(app.test_client(), BATCH)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 2, "duplicates": 0}
    events = json.loads(BATCH)["data"]
    kept = {"klaviyo-webhook-id": WEBHOOK_ID, "klaviyo-timestamp": STAMP}
    assert stored(app) == [
        ("73WCCK7JKtE", "event:klaviyo.subscribed_to_list", compact(events[0]),
         datetime(2026, 4, 13, 22, 16, 46, tzinfo=timezone.utc), kept),
        ("4MpJqUzrN8v", "event:klaviyo.opened_email", compact(events[1]),
         datetime(2026, 4, 13, 22, 48, 3, tzinfo=timezone.utc), kept),
    ]


def test_redelivery_is_200_and_a_mixed_batch_counts_duplicates(app):
    client = app.test_client()
    assert send(client, BATCH).status_code == 202
    again = send(client, BATCH, stamp="Mon, 13 Apr 2026 22:55:12 GMT")
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 2}
    payload = json.loads(BATCH)
    fresh = copy.deepcopy(payload["data"][1])
    fresh["external_id"] = fresh["payload"]["data"]["id"] = "5QrTxYz0Ab1"
    del fresh["payload"]["data"]["attributes"]["datetime"]
    payload["data"] = [payload["data"][0], fresh]
    mixed = send(client, json.dumps(payload).encode())
    assert mixed.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 1}
    rows = stored(app)
    assert [row[0] for row in rows] == ["73WCCK7JKtE", "4MpJqUzrN8v", "5QrTxYz0Ab1"]
    assert rows[2][3] == datetime.fromtimestamp(1776120483, tz=timezone.utc)


def test_an_iso_timestamp_header_is_signed_verbatim_too(app):
    stamp = "2026-04-13T22:50:12.101159+00:00"
    response = send(app.test_client(), BATCH, stamp=stamp)
    assert response.status_code == 202
    assert stored(app)[0][4] == {"klaviyo-webhook-id": WEBHOOK_ID, "klaviyo-timestamp": stamp}


def test_uppercase_hex_signatures_are_accepted(app):
    response = send(app.test_client(), BATCH, **{"Klaviyo-Signature": klaviyo_signature(BATCH).upper()})
    assert response.status_code == 202


def test_forged_requests_are_401_and_store_nothing(app):
    client = app.test_client()
    mismatch = "Klaviyo-Signature does not match"
    cases = [
        (send(client, BATCH, secret="another-secret"), mismatch),
        (send(client, BATCH, **{"Klaviyo-Signature": klaviyo_signature(BATCH.replace(b"API", b"APX"))}), mismatch),
        (client.post("/webhooks/klaviyo", data=BATCH.replace(b"jane.doe", b"eve.doe"), headers={
            "Klaviyo-Webhook-Id": WEBHOOK_ID, "Klaviyo-Timestamp": STAMP,
            "Klaviyo-Signature": klaviyo_signature(BATCH)}), mismatch),
        (send(client, BATCH, **{"Klaviyo-Timestamp": "Mon, 13 Apr 2026 22:50:13 GMT"}), mismatch),
        (send(client, BATCH, **{"Klaviyo-Signature": hmac.new(SECRET.encode(), STAMP.encode() + BATCH,
                                                              hashlib.sha256).hexdigest()}), mismatch),
        (send(client, BATCH, webhook_id="01KP4928STE8FKCWB6WDHZ4ZB8"),
         "meta.klaviyo_webhook_id does not match the Klaviyo-Webhook-Id header"),
    ]
    for header in ("Klaviyo-Signature", "Klaviyo-Timestamp", "Klaviyo-Webhook-Id"):
        cases.append((send(client, BATCH, **{header: None}),
                      "missing Klaviyo-Signature, Klaviyo-Timestamp or Klaviyo-Webhook-Id header"))
    for response, message in cases:
        assert response.status_code == 401
        assert response.get_json() == {"error": {"code": "bad_signature", "message": message}}
        assert SECRET not in response.get_data(as_text=True)
    assert stored(app) == []


def test_a_body_without_the_webhook_id_in_meta_is_401(app):
    payload = json.loads(BATCH)
    del payload["meta"]["klaviyo_webhook_id"]
    response = send(app.test_client(), json.dumps(payload).encode())
    assert response.status_code == 401
    assert stored(app) == []


def test_the_timestamp_is_not_held_to_a_window(app):
    """Klaviyo documents no replay window; a replayed request can only be a duplicate."""
    old = "Thu, 04 Jan 2024 18:05:25 GMT"
    client = app.test_client()
    assert send(client, BATCH, stamp=old).status_code == 202
    assert send(client, BATCH, stamp=old).status_code == 200
    assert len(stored(app)) == 2


@pytest.mark.parametrize("payload, message", [
    (b"{oops", "body is not JSON"),
    (json.dumps({"meta": {"klaviyo_webhook_id": WEBHOOK_ID}, "data": []}).encode(),
     'expected {"meta": {...}, "data": [...]} with at least one event'),
    (json.dumps({"meta": {"klaviyo_webhook_id": WEBHOOK_ID},
                 "data": [{"topic": "event:klaviyo.opened_email", "external_id": "a1"}, "x"]}).encode(),
     "data[1] is not an object"),
    (json.dumps({"meta": {"klaviyo_webhook_id": WEBHOOK_ID},
                 "data": [{"topic": "event:klaviyo.opened_email", "payload": {}}]}).encode(),
     "data[0].external_id must be a string of 1 to 255 characters"),
    (json.dumps({"meta": {"klaviyo_webhook_id": WEBHOOK_ID},
                 "data": [{"topic": "event:klaviyo.opened_email", "external_id": "k" * 256}]}).encode(),
     "data[0].external_id must be a string of 1 to 255 characters"),
    (json.dumps({"meta": {"klaviyo_webhook_id": WEBHOOK_ID}, "data": [{"external_id": "a1"}]}).encode(),
     "data[0].topic must be a non-empty string"),
])
def test_signed_but_unparseable_batches_are_400(app, payload, message):
    response = send(app.test_client(), payload)
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_payload", "message": message}}
    assert stored(app) == []


def test_the_secret_is_required_when_enabled(make_app):
    from hub.config import ConfigError

    with pytest.raises(ConfigError) as info:
        make_app(connectors={"klaviyo": {"enabled": True}}, plugins=["tests.plugins.echo", "connectors.klaviyo"])
    assert info.value.problems == {"connectors.klaviyo.webhook_secret": "Missing data for required field."}
