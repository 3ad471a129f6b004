"""mappings/klaviyo.yaml through the real endpoint, the embedded drain and the profile store."""
import copy
import json
from pathlib import Path

import pytest

from tests.connectors.test_klaviyo import BATCH, SECRET, send as post
from tests.mappings.test_mailchimp import drain, metrics, people

EMAIL_EVENTS = (Path(__file__).resolve().parent.parent / "fixtures" / "klaviyo" / "email_events.json").read_bytes()
JANE = "01KP4EGHH8QJ3N3AY2Z6V7RMDK"
MESSAGE = {"message_id": "01KP3ZB5A1X7N1Q2W3E4R5T6Y7", "campaign_name": "Spring sale",
           "subject": "Spring sale: 20% off"}


@pytest.fixture
def app(make_app):
    return make_app(connectors={"echo": {"enabled": False}, "klaviyo": {"enabled": True, "webhook_secret": SECRET}})


def send(app, *batches: bytes) -> None:
    """POST each signed batch and wait for the drain."""
    client = app.test_client()
    for body in batches:
        assert post(client, body).status_code == 202
    drain(app)


def only(batch: bytes, *external_ids: str) -> bytes:
    """The batch with just these events, in this order."""
    payload = json.loads(batch)
    events = {event["external_id"]: event for event in payload["data"]}
    payload["data"] = [copy.deepcopy(events[key]) for key in external_ids]
    return json.dumps(payload).encode()


def test_a_list_subscription_and_an_open_make_one_subscribed_person(app, db_engine):
    send(app, BATCH)
    assert people(db_engine) == [(
        [("email", "jane.doe@example.com"), ("klaviyo_profile_id", JANE)],
        {"email": ("jane.doe@example.com", "klaviyo", "2026-04-13T22:16:46+00:00"),
         "email_consent": ("subscribed", "klaviyo", "2026-04-13T22:16:46+00:00")},
        [("email.opened", "4MpJqUzrN8v", "2026-04-13T22:48:03+00:00", {**MESSAGE, "client": "Gmail"}),
         ("email.subscribed", "73WCCK7JKtE", "2026-04-13T22:16:46+00:00", {"method": "API"})],
        metrics("2026-04-13T22:16:46+00:00", "2026-04-13T22:48:03+00:00"),
    )]


#: the store the subscription batch and the e-mail events make (the pulled events too)
EMAIL_PEOPLE = [
    ([("email", "jane.doe@example.com"), ("klaviyo_profile_id", JANE)],
     {"email": ("jane.doe@example.com", "klaviyo", "2026-04-13T23:05:00+00:00"),
      "email_consent": ("unsubscribed", "klaviyo", "2026-04-13T23:05:00+00:00")},
     [("email.clicked", "6NbVcXz3Qe9", "2026-04-13T22:49:30+00:00",
       {**MESSAGE, "url": "https://shop.example.com/sale?utm_source=klaviyo"}),
      ("email.delivered", "3RtWqPz8Lk2", "2026-04-13T22:45:12+00:00", MESSAGE),
      ("email.opened", "4MpJqUzrN8v", "2026-04-13T22:48:03+00:00", {**MESSAGE, "client": "Gmail"}),
      ("email.subscribed", "73WCCK7JKtE", "2026-04-13T22:16:46+00:00", {"method": "API"}),
      ("email.unsubscribed", "9JhGfDs4Wa1", "2026-04-13T23:05:00+00:00",
       {"message_id": "01KP3ZB5A1X7N1Q2W3E4R5T6Y7", "method": "Unsubscribe link"})],
     metrics("2026-04-13T22:16:46+00:00", "2026-04-13T23:05:00+00:00")),
    ([("klaviyo_profile_id", "01KP4F7Q2W8E4R6T8Y0U2I4O6P")],
     {"email_consent": ("bounced", "klaviyo", "2026-04-13T22:45:20+00:00")},
     [("email.bounced", "2KmNbVc7Xz5", "2026-04-13T22:45:20+00:00", {**MESSAGE, "bounce_type": "hard"})],
     metrics("2026-04-13T22:45:20+00:00", "2026-04-13T22:45:20+00:00")),
    ([("klaviyo_profile_id", "01KP4G1A3S5D7F9G1H3J5K7L9Z")],
     {"email_consent": ("spam_reported", "klaviyo", "2026-04-13T22:58:41+00:00")},
     [("email.spam_reported", "5PoIuYt6Re3", "2026-04-13T22:58:41+00:00", MESSAGE)],
     metrics("2026-04-13T22:58:41+00:00", "2026-04-13T22:58:41+00:00")),
]


def test_email_events_map_to_the_email_timeline_and_consent(app, db_engine):
    send(app, BATCH, EMAIL_EVENTS)
    assert people(db_engine) == EMAIL_PEOPLE


def test_an_older_subscription_arriving_late_leaves_the_newer_consent(app, db_engine):
    send(app, only(EMAIL_EVENTS, "9JhGfDs4Wa1"))
    send(app, only(BATCH, "73WCCK7JKtE"))
    [(identities, traits, timeline, _)] = people(db_engine)
    assert identities == [("email", "jane.doe@example.com"), ("klaviyo_profile_id", JANE)]
    assert traits == {"email": ("jane.doe@example.com", "klaviyo", "2026-04-13T23:05:00+00:00"),
                      "email_consent": ("unsubscribed", "klaviyo", "2026-04-13T23:05:00+00:00")}
    assert [a[:2] for a in timeline] == [("email.subscribed", "73WCCK7JKtE"), ("email.unsubscribed", "9JhGfDs4Wa1")]


def test_a_redelivery_changes_nothing(app, db_engine):
    send(app, BATCH, EMAIL_EVENTS)
    before = people(db_engine)
    client = app.test_client()
    assert post(client, BATCH, stamp="Mon, 13 Apr 2026 23:20:00 GMT").status_code == 200
    assert post(client, only(EMAIL_EVENTS, "2KmNbVc7Xz5", "9JhGfDs4Wa1")).status_code == 200
    drain(app)
    assert people(db_engine) == before


def test_topics_without_a_mapping_are_stored_but_change_no_profile(app, db_engine):
    payload = json.loads(only(BATCH, "4MpJqUzrN8v"))
    payload["data"][0].update(topic="event:klaviyo.sent_sms", external_id="7SmSxYz0Ab1")
    send(app, json.dumps(payload).encode())
    assert people(db_engine) == []
