"""The receiver's answers and exactly what the inbox holds after each."""
import io
import json

from sqlalchemy import select

from hub.models import InboxRecord, InboxState
from tests.conftest import ECHO_SECRET, post_echo


def inbox_rows(app):
    hub = app.extensions["tributary"]
    with hub.session() as session:
        return [(r.connector, r.key, r.topic, status, r.body, r.headers) for r, status in session.execute(
            select(InboxRecord, InboxState.status).join_from(InboxRecord, InboxState).order_by(InboxRecord.id))]


def no_drain(app):
    """Keep records pending so the test sees exactly what the receiver stored."""
    app.extensions["tributary"].queue.signal_drain = lambda: False
    return app


def test_accepted_then_duplicate(make_app):
    app = no_drain(make_app())
    client = app.test_client()
    first = post_echo(client, {"id": "evt_1", "topic": "thing.created"}, **{"X-Echo-Topic": "thing.created"})
    assert first.status_code == 202
    assert first.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    again = post_echo(client, {"id": "evt_1", "topic": "thing.created"})
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 1}
    assert inbox_rows(app) == [("echo", "evt_1", "thing.created", "pending",
                                b'{"id": "evt_1", "topic": "thing.created"}',
                                {"x-echo-topic": "thing.created"})]


def test_a_batch_becomes_one_row_per_event_and_partial_duplicates_count(make_app):
    app = no_drain(make_app())
    client = app.test_client()
    post_echo(client, {"id": "a"})
    response = post_echo(client, {"events": [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "b"}]})
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 2, "duplicates": 2}
    assert [row[1] for row in inbox_rows(app)] == ["a", "b", "c"]


def test_forged_requests_are_401_and_store_nothing(make_app):
    app = no_drain(make_app())
    client = app.test_client()
    body = json.dumps({"id": "evt_1"}).encode()
    wrong_secret = post_echo(client, body, secret="not-the-secret")
    missing = client.post("/webhooks/echo", data=body)
    tampered = post_echo(client, body, **{"X-Echo-Signature": post_echo.__globals__["hmac"].new(
        ECHO_SECRET.encode(), body + b" ", "sha256").hexdigest()})
    for response in (wrong_secret, missing, tampered):
        assert response.status_code == 401
        assert response.get_json() == {"error": {"code": "bad_signature",
                                                 "message": "X-Echo-Signature does not match"}}
    assert inbox_rows(app) == []


def test_unknown_and_disabled_connectors_are_404(make_app):
    app = no_drain(make_app(connectors={"echo": {"enabled": False}}))
    client = app.test_client()
    for name in ("echo", "nosuch", "website"):
        response = client.post(f"/webhooks/{name}", data=b"{}")
        assert response.status_code == 404
        assert response.get_json() == {"error": {"code": "unknown_connector",
                                                 "message": f"no enabled connector named {name!r}"}}
    assert inbox_rows(app) == []


def test_too_large_is_413_whether_declared_or_streamed(make_app):
    app = no_drain(make_app(webhooks={"max_body_bytes": 2048}))
    client = app.test_client()
    big = json.dumps({"id": "big", "pad": "x" * 3000}).encode()
    assert post_echo(client, big).status_code == 413

    environ = {"wsgi.input": io.BytesIO(big), "wsgi.input_terminated": True}
    streamed = client.post("/webhooks/echo", environ_overrides=environ,
                           headers={"Transfer-Encoding": "chunked"})
    assert streamed.status_code == 413
    assert streamed.get_json()["error"] == {"code": "too_large", "message": "body over 2048 bytes"}
    just_fits = json.dumps({"id": "ok", "pad": "x" * 1900}).encode()
    assert post_echo(client, just_fits).status_code == 202
    assert [row[1] for row in inbox_rows(app)] == ["ok"]


def test_unparseable_is_400_and_stores_nothing(make_app):
    app = no_drain(make_app())
    client = app.test_client()
    not_json = post_echo(client, b"{not json")
    assert not_json.status_code == 400
    assert not_json.get_json() == {"error": {"code": "bad_payload", "message": "body is not JSON"}}
    no_id = post_echo(client, {"events": [{"id": "x"}, {"noid": 1}]})
    assert no_id.status_code == 400
    assert inbox_rows(app) == []


def test_connector_preflight_answers_and_other_methods_are_405(make_app):
    app = no_drain(make_app())
    client = app.test_client()
    challenge = client.get("/webhooks/echo?challenge=abc123")
    assert (challenge.status_code, challenge.data) == (200, b"abc123")
    plain_get = client.get("/webhooks/echo")
    assert plain_get.status_code == 405
    assert plain_get.get_json()["error"]["code"] == "method_not_allowed"
    assert inbox_rows(app) == []


def test_requests_are_counted_in_metrics(make_app):
    app = no_drain(make_app())
    client = app.test_client()
    before = client.get("/metrics").data.decode()

    def count(text, code):
        line = f'tributary_webhook_requests_total{{code="{code}",connector="echo"}}'
        values = [float(l.split()[-1]) for l in text.splitlines() if l.startswith(line)]
        return values[0] if values else 0.0

    post_echo(client, {"id": "m1"})
    post_echo(client, {"id": "m1"})
    post_echo(client, {"id": "m2"}, secret="wrong")
    after = client.get("/metrics").data.decode()
    assert count(after, "202") - count(before, "202") == 1
    assert count(after, "200") - count(before, "200") == 1
    assert count(after, "401") - count(before, "401") == 1
    assert 'tributary_inbox_rows{connector="echo",status="pending"} 1.0' in after


def test_aware_time_reads_offsets_and_takes_naive_times_as_utc_only_when_asked():
    from datetime import datetime, timezone

    from hub.connector import aware_time

    utc = timezone.utc
    assert aware_time(" 2024-11-20T08:12:45-05:00") == datetime(2024, 11, 20, 13, 12, 45, tzinfo=utc)
    assert aware_time("2024-11-20T13:12:45Z") == datetime(2024, 11, 20, 13, 12, 45, tzinfo=utc)
    assert aware_time("2024-11-20T13:12:45") is None
    assert aware_time("2024-11-20T13:12:45", naive_utc=True) == datetime(2024, 11, 20, 13, 12, 45, tzinfo=utc)
    assert aware_time("2024-11-20T08:12:45-05:00", naive_utc=True) == datetime(2024, 11, 20, 13, 12, 45, tzinfo=utc)
    assert (aware_time("yesterday", naive_utc=True), aware_time(1732108365)) == (None, None)
