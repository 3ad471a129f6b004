"""The Freshdesk connector: HTTP Basic credentials, the documented JSON template, one record per call.

Freshdesk signs nothing; its automation rule's "Trigger webhook" action sends the admin's
JSON template with Basic credentials when "Requires authentication" is ticked. The tests
send rendered templates the way the rule does.
"""
import base64
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.freshdesk import topic
from hub.config import ConfigError
from tests.conftest import inbox_rows as stored

USERNAME = "freshdesk-hook"
PASSWORD = "fd-hook-password-5b7e1c9a"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "freshdesk"


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


@pytest.fixture
def app(make_app):
    app = make_app(connectors={"echo": {"enabled": False},
                               "freshdesk": {"enabled": True, "webhook_username": USERNAME,
                                             "webhook_password": PASSWORD}},
                   plugins=["tests.plugins.echo", "connectors.freshdesk"])
    app.extensions["tributary"].queue.signal_drain = lambda: False
    return app


def basic(username: str = USERNAME, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def send(client, body: bytes, authorization: str = basic()):
    """POST as the rule does; an empty ``authorization`` sends no Authorization header."""
    headers = {"Authorization": authorization} if authorization else {}
    return client.post("/webhooks/freshdesk", data=body, headers=headers, content_type="application/json")


def test_a_created_ticket_is_stored_raw_under_id_time_and_status(app):
    body = fixture("ticket_created")
    response = send(app.test_client(), body)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "accepted": 1, "duplicates": 0}
    assert stored(app) == [("1228307:2026-03-02T10:15:42Z:Open", "ticket.created", body,
                            datetime(2026, 3, 2, 10, 15, 42, tzinfo=timezone.utc), {})]


def test_status_change_and_note_get_their_own_records_and_topics(app):
    client = app.test_client()
    resolved, note = fixture("status_resolved"), fixture("note_added")
    assert send(client, resolved).status_code == 202
    assert send(client, note).status_code == 202
    assert stored(app) == [
        ("1228307:2026-03-03T08:01:09Z:Resolved", "ticket.status_changed", resolved,
         datetime(2026, 3, 3, 8, 1, 9, tzinfo=timezone.utc), {}),
        ("1228307:Mon, 2 Mar, 2026 at 2:40 PM:Pending", "ticket.note_added", note, None, {}),
    ]


def test_a_retried_call_is_a_duplicate(app):
    client = app.test_client()
    body = fixture("ticket_created")
    assert send(client, body).status_code == 202
    again = send(client, body)
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "accepted": 0, "duplicates": 1}
    assert len(stored(app)) == 1


def test_the_simple_content_mode_with_integer_ids_works_once_updated_at_is_ticked(app):
    payload = {"freshdesk_webhook": {
        "ticket_id": 1228307, "ticket_subject": "Refund request", "ticket_status": "Open",
        "ticket_priority": "Low", "ticket_contact_name": "Jane Doe", "ticket_contact_email": "jane.doe@example.com",
        "triggered_event": "{priority:{from:1,to:3}}", "ticket_updated_at": "2026-03-02T11:00:00+01:00"}}
    body = json.dumps(payload).encode()
    assert send(app.test_client(), body).status_code == 202
    assert stored(app) == [("1228307:2026-03-02T11:00:00+01:00:Open", "ticket.priority_changed", body,
                            datetime(2026, 3, 2, 10, tzinfo=timezone.utc), {})]


@pytest.mark.parametrize("authorization, message", [
    ("", "missing Basic credentials in the Authorization header"),
    (basic(password="fd-hook-password-5b7e1c9b"), "wrong Basic credentials"),
    (basic(username="freshdesk-hooks"), "wrong Basic credentials"),
    (basic(username="", password=""), "wrong Basic credentials"),
    (basic(password=PASSWORD + "x"), "wrong Basic credentials"),
    ("Bearer " + PASSWORD, "missing Basic credentials in the Authorization header"),
    ("Basic " + base64.b64encode(USERNAME.encode()).decode(), "missing Basic credentials in the Authorization header"),
    ("Basic not*base64", "missing Basic credentials in the Authorization header"),
    (f"Basic {USERNAME}:{PASSWORD}", "missing Basic credentials in the Authorization header"),
])
def test_bad_credentials_are_401_and_store_nothing(app, authorization, message):
    response = send(app.test_client(), fixture("ticket_created"), authorization=authorization)
    assert response.status_code == 401
    assert response.get_json() == {"error": {"code": "bad_signature", "message": message}}
    assert PASSWORD not in response.get_data(as_text=True)
    assert stored(app) == []


def test_the_scheme_name_is_case_insensitive(app):
    response = send(app.test_client(), fixture("ticket_created"), authorization="basic" + basic()[5:])
    assert response.status_code == 202


@pytest.mark.parametrize("payload, message", [
    (b"<freshdesk_webhook><ticket_id>1</ticket_id></freshdesk_webhook>",
     "body is not JSON (set the rule's encoding to JSON)"),
    (b'{"ticket_id": "1228307"}', 'expected {"freshdesk_webhook": {...}}'),
    (b'{"freshdesk_webhook": "1228307"}', 'expected {"freshdesk_webhook": {...}}'),
    (b'{"freshdesk_webhook": {"ticket_id": "1228307", "ticket_status": "Open"}}',
     "freshdesk_webhook.ticket_id and freshdesk_webhook.ticket_updated_at are required"),
    (b'{"freshdesk_webhook": {"ticket_id": "", "ticket_updated_at": "2026-03-02T10:15:42Z"}}',
     "freshdesk_webhook.ticket_id and freshdesk_webhook.ticket_updated_at are required"),
    (b'{"freshdesk_webhook": {"ticket_id": "1", "ticket_updated_at": "' + b"x" * 260 + b'"}}',
     "ticket_id, ticket_updated_at and ticket_status exceed 255 characters"),
])
def test_unusable_bodies_are_400(app, payload, message):
    response = send(app.test_client(), payload)
    assert response.status_code == 400
    assert response.get_json() == {"error": {"code": "bad_payload", "message": message}}
    assert stored(app) == []


@pytest.mark.parametrize("triggered_event, expected", [
    ("{ticket_action:created}", "ticket.created"),
    ("{ticket_action:updated}", "ticket.updated"),
    ("{status:{from:4,to:6}}", "ticket.status_changed"),
    ("{priority:{from:1,to:2}}", "ticket.priority_changed"),
    ("{note_type:public}", "ticket.note_added"),
    ("{Reply Sent:sent}", "ticket.reply_sent"),
    ("", "ticket.updated"),
    ("{{triggered_event}}", "ticket.updated"),
    (None, "ticket.updated"),
])
def test_topics_come_from_triggered_event(triggered_event, expected):
    assert topic(triggered_event) == expected


def test_the_password_must_be_long_enough(make_app):
    with pytest.raises(ConfigError) as info:
        make_app(connectors={"freshdesk": {"enabled": True, "webhook_username": USERNAME,
                                           "webhook_password": "short"}},
                 plugins=["tests.plugins.echo", "connectors.freshdesk"])
    assert info.value.problems == {"connectors.freshdesk.webhook_password":
                                   "must be at least 16 characters (it is the only thing guarding the webhook)"}
