"""mappings/freshdesk.yaml through the real endpoint, the embedded drain and the profile store."""
import json

import pytest

from tests.connectors.test_freshdesk import PASSWORD, USERNAME, fixture, send as post
from tests.mappings.test_mailchimp import drain, metrics, people, received_at

JANE = [("email", "jane.doe@example.com")]
OPENED = ("ticket.opened", "1228307", "2026-03-02T10:15:42+00:00",
          {"ticket_id": "1228307", "status": "open", "priority": "low", "subject": "Refund request"})
RESOLVED = ("ticket.solved", "1228307:2026-03-03T08:01:09Z:Resolved", "2026-03-03T08:01:09+00:00",
            {"ticket_id": "1228307", "status": "resolved", "priority": "low", "subject": "Refund request"})


@pytest.fixture
def app(make_app):
    return make_app(connectors={"echo": {"enabled": False}, "freshdesk": {
        "enabled": True, "webhook_username": USERNAME, "webhook_password": PASSWORD}})


def send(app, *bodies: bytes) -> None:
    """POST each rendered template with the rule's Basic credentials and wait for the drain."""
    client = app.test_client()
    for body in bodies:
        assert post(client, body).status_code == 202
    drain(app)


def rendered(name: str, **fields) -> bytes:
    """A fixture with some template fields changed."""
    payload = json.loads(fixture(name))
    payload["freshdesk_webhook"].update(fields)
    return json.dumps(payload).encode()


def test_a_ticket_opened_then_resolved(app, db_engine):
    send(app, fixture("ticket_created"))
    assert people(db_engine) == [(
        JANE, {"email": ("jane.doe@example.com", "freshdesk", "2026-03-02T10:15:42+00:00")}, [OPENED],
        metrics("2026-03-02T10:15:42+00:00", "2026-03-02T10:15:42+00:00", 1))]
    send(app, fixture("status_resolved"))
    assert people(db_engine) == [(
        JANE, {"email": ("jane.doe@example.com", "freshdesk", "2026-03-03T08:01:09+00:00")}, [OPENED, RESOLVED],
        metrics("2026-03-02T10:15:42+00:00", "2026-03-03T08:01:09+00:00", 0))]


def test_a_note_with_a_local_update_time_is_an_update_at_its_arrival(app, db_engine):
    send(app, fixture("note_added"))
    key = "1228307:Mon, 2 Mar, 2026 at 2:40 PM:Pending"
    arrived = received_at(app, key)
    assert people(db_engine) == [(
        JANE, {"email": ("jane.doe@example.com", "freshdesk", arrived)},
        [("ticket.updated", key, arrived,
          {"ticket_id": "1228307", "status": "pending", "priority": "medium", "subject": "Refund request"})],
        metrics(arrived, arrived, 1))]


def test_status_changes_to_open_statuses_are_updates_and_custom_statuses_add_nothing(app, db_engine):
    waiting = rendered("status_resolved", ticket_status="Waiting on Customer", ticket_contact_id=80012345,
                       ticket_updated_at="2026-03-02T12:00:00Z", triggered_event="{status:{from:2,to:6}}")
    custom = rendered("status_resolved", ticket_status="Awaiting refund", ticket_updated_at="2026-03-02T13:00:00Z",
                      triggered_event="{status:{from:6,to:12}}")
    send(app, fixture("ticket_created"), waiting, custom)
    assert people(db_engine) == [(
        [("email", "jane.doe@example.com"), ("freshdesk_contact_id", "80012345")],
        {"email": ("jane.doe@example.com", "freshdesk", "2026-03-02T13:00:00+00:00")},
        [OPENED, ("ticket.updated", "1228307:2026-03-02T12:00:00Z:Waiting on Customer", "2026-03-02T12:00:00+00:00",
                  {"ticket_id": "1228307", "status": "waiting on customer", "priority": "low",
                   "subject": "Refund request"})],
        metrics("2026-03-02T10:15:42+00:00", "2026-03-02T12:00:00+00:00", 1))]


def test_an_older_update_arriving_late_leaves_the_newer_traits(app, db_engine):
    send(app, fixture("status_resolved"))
    send(app, fixture("ticket_created"))
    assert people(db_engine) == [(
        JANE, {"email": ("jane.doe@example.com", "freshdesk", "2026-03-03T08:01:09+00:00")}, [OPENED, RESOLVED],
        metrics("2026-03-02T10:15:42+00:00", "2026-03-03T08:01:09+00:00", 0))]


def test_a_redelivery_changes_nothing(app, db_engine):
    send(app, fixture("ticket_created"), fixture("status_resolved"))
    before = people(db_engine)
    client = app.test_client()
    for name in ("status_resolved", "ticket_created"):
        assert post(client, fixture(name)).status_code == 200
    drain(app)
    assert people(db_engine) == before
