"""mappings/zendesk.yaml through the real endpoint, the embedded drain and the profile store.

Event subscriptions name the requester by user id, trigger calls by e-mail address; a
``user.created`` event carries both and joins the two.
"""
import pytest

from tests.connectors.test_zendesk import SECRET, fixture, send as post
from tests.mappings.test_mailchimp import drain, metrics, people, received_at

TICKET = {"ticket_id": "35436", "priority": "high", "subject": "Printer on fire"}
CREATED = ("ticket.opened", "35436", "2024-04-17T17:18:10+00:00", {**TICKET, "status": "new"})
COMMENTED = ("ticket.updated", "9a7e4c1d-2f3b-4e5a-8c6d-1b0a9f8e7d6c", "2024-04-17T18:01:32.504211+00:00",
             {**TICKET, "status": "open"})
SOLVED = ("ticket.solved", "6f1c8a52-3b8e-4d59-9d0a-7e2b1c4f5a90", "2024-04-18T09:02:44.120394+00:00",
          {**TICKET, "status": "solved"})
TRIGGER_UPDATED = ("ticket.updated", "8350205702", "2024-04-17T18:05:00+00:00",
                   {"ticket_id": "35436", "status": "open"})
RATED = ("satisfaction.rated", "8350205733", "2024-04-18T11:47:00+00:00",
         {"ticket_id": "35436", "score": "good", "comment": "Quick and friendly, thanks!", "status": "solved"})
#: fixture name -> the invocation id it is sent with
INVOCATIONS = {"ticket_created": "8350205582", "comment_added": "8350205601", "status_changed_solved": "8350205590",
               "trigger_ticket_updated": "8350205702", "trigger_satisfaction": "8350205733",
               "user_created": "8350205550"}


@pytest.fixture
def app(make_app):
    return make_app(connectors={"echo": {"enabled": False}, "zendesk": {"enabled": True, "webhook_secret": SECRET}})


def send(app, *names: str) -> None:
    """POST each fixture signed as Zendesk does, with its invocation id, and wait for the drain."""
    client = app.test_client()
    for name in names:
        assert post(client, fixture(name), invocation=INVOCATIONS[name]).status_code == 202
    drain(app)


def test_ticket_events_build_the_requesters_ticket_history(app, db_engine):
    send(app, "ticket_created", "comment_added")
    assert people(db_engine) == [([("zendesk_user_id", "20978392")], {}, [CREATED, COMMENTED],
                                  metrics("2024-04-17T17:18:10+00:00", "2024-04-17T18:01:32.504211+00:00", 1))]
    send(app, "status_changed_solved")
    assert people(db_engine) == [([("zendesk_user_id", "20978392")], {}, [CREATED, SOLVED, COMMENTED],
                                  metrics("2024-04-17T17:18:10+00:00", "2024-04-18T09:02:44.120394+00:00", 0))]


def test_trigger_calls_name_the_requester_by_email(app, db_engine):
    send(app, "trigger_ticket_updated", "trigger_satisfaction")
    assert people(db_engine) == [(
        [("email", "jane.doe@example.com")],
        {"email": ("jane.doe@example.com", "zendesk", "2024-04-18T11:47:00+00:00")},
        [RATED, TRIGGER_UPDATED],
        metrics("2024-04-17T18:05:00+00:00", "2024-04-18T11:47:00+00:00", 1))]


def test_a_user_created_event_joins_event_and_trigger_histories(app, db_engine):
    send(app, "ticket_created", "comment_added", "status_changed_solved", "trigger_ticket_updated",
         "trigger_satisfaction")
    assert len(people(db_engine)) == 2
    send(app, "user_created")
    assert people(db_engine) == [(
        [("email", "jane.doe@example.com"), ("zendesk_user_id", "20978392")],
        {"email": ("jane.doe@example.com", "zendesk", "2024-04-18T11:47:00+00:00")},
        [RATED, CREATED, SOLVED, TRIGGER_UPDATED, COMMENTED],
        metrics("2024-04-17T17:18:10+00:00", "2024-04-18T11:47:00+00:00", 0))]


def test_an_unrated_satisfaction_trigger_adds_no_rating(app, db_engine):
    body = fixture("trigger_satisfaction").replace(b'"satisfaction_rating":"Good"', b'"satisfaction_rating":""')
    assert post(app.test_client(), body, invocation="8350205740").status_code == 202
    drain(app)
    [(identities, _, timeline, _)] = people(db_engine)
    assert (identities, timeline) == ([("email", "jane.doe@example.com")], [])


def test_a_trigger_body_without_topic_or_time_is_an_update_at_its_arrival(app, db_engine):
    body = b'{"ticket_id":"35436","requester_email":"jane.doe@example.com","status":"Pending"}'
    assert post(app.test_client(), body, invocation="8350205800").status_code == 202
    drain(app)
    arrived = received_at(app, "8350205800")
    assert people(db_engine) == [(
        [("email", "jane.doe@example.com")], {"email": ("jane.doe@example.com", "zendesk", arrived)},
        [("ticket.updated", "8350205800", arrived, {"ticket_id": "35436", "status": "pending"})],
        metrics(arrived, arrived, 1))]


def test_an_older_user_event_arriving_late_leaves_the_newer_traits(app, db_engine):
    send(app, "trigger_satisfaction")
    send(app, "user_created")
    [(identities, traits, _, _)] = people(db_engine)
    assert identities == [("email", "jane.doe@example.com"), ("zendesk_user_id", "20978392")]
    assert traits == {"email": ("jane.doe@example.com", "zendesk", "2024-04-18T11:47:00+00:00")}


def test_a_redelivery_changes_nothing(app, db_engine):
    send(app, "ticket_created", "trigger_satisfaction")
    before = people(db_engine)
    client = app.test_client()
    assert post(client, fixture("ticket_created"), invocation="8350209999").status_code == 200
    assert post(client, fixture("trigger_satisfaction"), invocation="8350205733").status_code == 200
    drain(app)
    assert people(db_engine) == before
