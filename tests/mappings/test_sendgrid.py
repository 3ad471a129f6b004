"""mappings/sendgrid.yaml through the real endpoint, the embedded drain and the profile store."""
import json

import pytest

from tests.connectors.test_sendgrid import EVENTS, PUBLIC, send as post
from tests.mappings.test_mailchimp import drain, metrics, people

MESSAGE = "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
NEWSLETTER = {"message_id": MESSAGE, "categories": ["newsletter"]}


@pytest.fixture
def app(make_app):
    return make_app(connectors={"echo": {"enabled": False},
                                "sendgrid": {"enabled": True, "verification_key": PUBLIC}})


def send(app, *batches) -> None:
    """POST each batch (a list of events) signed as SendGrid does and wait for the drain."""
    client = app.test_client()
    for events in batches:
        assert post(client, json.dumps(events).encode()).status_code == 202
    drain(app)


def events(*kinds: str) -> list[dict]:
    """The fixture's events of these types, in this order."""
    by_kind = {event["event"]: event for event in json.loads(EVENTS)}
    return [by_kind[kind] for kind in kinds]


def test_the_documented_events_map_to_exactly_this_store(app, db_engine):
    send(app, json.loads(EVENTS))
    assert people(db_engine) == [
        ([("email", "angry@example.org")],
         {"email": ("angry@example.org", "sendgrid", "2023-11-14T22:18:20+00:00"),
          "email_consent": ("spam_reported", "sendgrid", "2023-11-14T22:18:20+00:00")},
         [("email.spam_reported", "dGVzdC1zcGFtcmVwb3J0LTAx", "2023-11-14T22:18:20+00:00",
           {"message_id": "44c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "categories": ["newsletter"]})],
         metrics("2023-11-14T22:18:20+00:00", "2023-11-14T22:18:20+00:00")),
        ([("email", "bounce@example.net")],
         {"email": ("bounce@example.net", "sendgrid", "2023-11-14T22:16:40+00:00"),
          "email_consent": ("bounced", "sendgrid", "2023-11-14T22:16:40+00:00")},
         [("email.bounced", "dGVzdC1ib3VuY2UtZXZlbnQtMDE", "2023-11-14T22:16:40+00:00",
           {"message_id": "24c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "bounce_type": "bounce",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist.", "status": "5.1.1",
            "classification": "Invalid Address"})],
         metrics("2023-11-14T22:16:40+00:00", "2023-11-14T22:16:40+00:00")),
        ([("email", "dropped@example.net")],
         {"email": ("dropped@example.net", "sendgrid", "2023-11-14T22:16:50+00:00")},
         [("email.bounced", "dGVzdC1kcm9wcGVkLTAwMQ", "2023-11-14T22:16:50+00:00",
           {"message_id": "34c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "categories": "promo",
            "bounce_type": "dropped", "reason": "Bounced Address", "status": "5.0.0"})],
         metrics("2023-11-14T22:16:50+00:00", "2023-11-14T22:16:50+00:00")),
        ([("email", "jane.doe@example.com")],
         {"email": ("jane.doe@example.com", "sendgrid", "2023-11-14T22:21:00+00:00"),
          "email_consent": ("unsubscribed", "sendgrid", "2023-11-14T22:20:00+00:00")},
         [("email.clicked", "dGVzdC1jbGljay1ldmVudC0wMDE", "2023-11-14T22:16:00+00:00",
           {**NEWSLETTER, "url": "https://example.com/offer"}),
          ("email.delivered", "dGVzdC1kZWxpdmVyZWQtMDAx", "2023-11-14T22:14:20+00:00", NEWSLETTER),
          ("email.opened", "dGVzdC1vcGVuLWV2ZW50LTAwMQ", "2023-11-14T22:15:00+00:00",
           {**NEWSLETTER, "machine_open": False}),
          ("email.unsubscribed", "dGVzdC11bnN1YnNjcmliZS0x", "2023-11-14T22:20:00+00:00", NEWSLETTER),
          ("email.unsubscribed", "dGVzdC1ncm91cC11bnN1Yi0x", "2023-11-14T22:21:00+00:00",
           {**NEWSLETTER, "asm_group_id": 42})],
         metrics("2023-11-14T22:14:20+00:00", "2023-11-14T22:21:00+00:00")),
    ]


def test_processed_and_deferred_events_change_no_profile(app, db_engine):
    send(app, events("processed", "deferred"))
    assert people(db_engine) == []


def test_a_group_resubscribe_is_a_subscription_to_that_group_only(app, db_engine):
    resubscribe = {"email": "jane.doe@example.com", "timestamp": 1700000900, "event": "group_resubscribe",
                   "sg_event_id": "dGVzdC1ncm91cC1yZXN1Yi0x", "sg_message_id": MESSAGE, "asm_group_id": 42,
                   "singlesend_id": "3d6f5a2e-8c1b-11ee-b9d1-0242ac120002"}
    send(app, events("unsubscribe"), [resubscribe])
    [(_, traits, timeline, _)] = people(db_engine)
    assert traits["email_consent"] == ("unsubscribed", "sendgrid", "2023-11-14T22:20:00+00:00")
    assert timeline[0] == ("email.subscribed", "dGVzdC1ncm91cC1yZXN1Yi0x", "2023-11-14T22:28:20+00:00",
                           {"message_id": MESSAGE, "campaign_id": "3d6f5a2e-8c1b-11ee-b9d1-0242ac120002",
                            "asm_group_id": 42})


def test_older_events_arriving_late_leave_the_newer_traits(app, db_engine):
    send(app, events("unsubscribe"))
    send(app, events("delivered", "open"))
    [(_, traits, timeline, _)] = people(db_engine)
    assert traits == {"email": ("jane.doe@example.com", "sendgrid", "2023-11-14T22:20:00+00:00"),
                      "email_consent": ("unsubscribed", "sendgrid", "2023-11-14T22:20:00+00:00")}
    assert [a[0] for a in timeline] == ["email.delivered", "email.opened", "email.unsubscribed"]


def test_a_redelivery_changes_nothing(app, db_engine):
    send(app, json.loads(EVENTS))
    before = people(db_engine)
    client = app.test_client()
    assert post(client, EVENTS, stamp="1700003600").status_code == 200
    assert post(client, json.dumps(events("bounce", "click")).encode()).status_code == 200
    drain(app)
    assert people(db_engine) == before
