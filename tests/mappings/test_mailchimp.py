"""mappings/mailchimp.yaml through the real endpoint, the embedded drain and the profile store.

Also home of the helpers the other mapping tests import: ``drain`` and ``people``.
"""
import hashlib
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.mailchimp import parse_form
from hub.models import Activity, Identity, InboxRecord, InboxState, Profile, Trait
from tests.conftest import wait_for
from tests.connectors.test_mailchimp import (CAMPAIGN, CLEANED, KEY, PROFILE, SUBSCRIBE, UNSUBSCRIBE, UPEMAIL,
                                             canonical, post)


def drain(app) -> None:
    """Wait until the embedded drain has handled every inbox row, and check none failed."""
    hub = app.extensions["tributary"]

    def rows():
        with hub.session() as session:
            return session.execute(select(InboxState.status, InboxState.error)).all()

    wait_for(lambda: all(status != "pending" for status, _ in rows()))
    assert [tuple(row) for row in rows() if row[0] != "processed"] == []


def received_at(app, key: str) -> str:
    """When the hub received the inbox row with this key (ISO 8601)."""
    with app.extensions["tributary"].session() as session:
        return session.scalar(select(InboxRecord.received_at).where(InboxRecord.key == key)).isoformat()


def people(engine) -> list[tuple]:
    """The store independent of ids: per surviving person, sorted identities, traits as
    ``{name: (value, source, observed_at)}``, the timeline as sorted
    ``(type, source_id, occurred_at, properties)`` and the metrics."""
    with Session(engine) as session:
        found = []
        for profile in session.scalars(select(Profile).where(Profile.merged_into.is_(None))):
            identities = sorted((i.type, i.value) for i in session.scalars(
                select(Identity).where(Identity.profile_id == profile.id)))
            traits = {t.name: (t.value, t.source, t.observed_at.isoformat()) for t in session.scalars(
                select(Trait).where(Trait.profile_id == profile.id))}
            timeline = sorted(((a.type, a.source_id, a.occurred_at.isoformat(), a.properties) for a in session.scalars(
                select(Activity).where(Activity.profile_id == profile.id))), key=lambda a: a[:3])
            found.append((identities, traits, timeline, profile.metrics))
        return sorted(found, key=repr)


def metrics(first: str | None = None, last: str | None = None, open_tickets: int = 0) -> dict:
    """The metrics of a person without orders or payments."""
    return {"orders_count": 0, "total_spent": {}, "currency": None, "last_order_at": None, "payments_count": 0,
            "total_paid": {}, "open_tickets": open_tickets, "first_seen_at": first, "last_seen_at": last}


def key_of(fields) -> str:
    """The inbox key (and activity source id) of a notification: SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical(parse_form(urlencode(fields).encode()))).hexdigest()


def changed(fields, **values) -> list[tuple[str, str]]:
    """The notification with some fields replaced or added (``data__merges__FNAME`` = ``data[merges][FNAME]``)."""
    named = {}
    for name, value in values.items():
        head, *rest = name.split("__")
        named[head + "".join(f"[{part}]" for part in rest)] = value
    result = [(k, named.pop(k, v)) for k, v in fields]
    return result + list(named.items())


@pytest.fixture
def app(make_app):
    return make_app(connectors={"echo": {"enabled": False}, "mailchimp": {"enabled": True, "webhook_key": KEY}})


def send(app, *notifications) -> None:
    """POST each notification as Mailchimp does and wait for the drain."""
    client = app.test_client()
    for fields in notifications:
        assert post(client, fields).status_code == 202
    drain(app)


SUBSCRIBED_AT = "2009-03-26T21:35:57+00:00"


@pytest.mark.parametrize("fields, expected", [
    (SUBSCRIBE, [(
        [("email", "api@mailchimp.com"), ("mailchimp_member_id", "8a25ff1d98")],
        {"email": ("api@mailchimp.com", "mailchimp", SUBSCRIBED_AT),
         "first_name": ("Mailchimp", "mailchimp", SUBSCRIBED_AT), "last_name": ("API", "mailchimp", SUBSCRIBED_AT),
         "email_consent": ("subscribed", "mailchimp", SUBSCRIBED_AT)},
        [("email.subscribed", key_of(SUBSCRIBE), SUBSCRIBED_AT, {"list_id": "a6b5da1054"})],
        metrics(SUBSCRIBED_AT, SUBSCRIBED_AT))]),
    (UNSUBSCRIBE, [(
        [("email", "api+unsub@mailchimp.com"), ("mailchimp_member_id", "8a25ff1d98")],
        {"email": ("api+unsub@mailchimp.com", "mailchimp", "2009-03-26T21:40:57+00:00"),
         "first_name": ("Mailchimp", "mailchimp", "2009-03-26T21:40:57+00:00"),
         "last_name": ("API", "mailchimp", "2009-03-26T21:40:57+00:00"),
         "email_consent": ("unsubscribed", "mailchimp", "2009-03-26T21:40:57+00:00")},
        [("email.unsubscribed", key_of(UNSUBSCRIBE), "2009-03-26T21:40:57+00:00",
          {"list_id": "a6b5da1054", "campaign_id": "cb398d21d2", "action": "unsub", "reason": "manual"})],
        metrics("2009-03-26T21:40:57+00:00", "2009-03-26T21:40:57+00:00"))]),
    (PROFILE, [(
        [("email", "api@mailchimp.com"), ("mailchimp_member_id", "8a25ff1d98")],
        {"email": ("api@mailchimp.com", "mailchimp", "2009-03-26T21:31:21+00:00"),
         "first_name": ("Mailchimp", "mailchimp", "2009-03-26T21:31:21+00:00"),
         "last_name": ("API", "mailchimp", "2009-03-26T21:31:21+00:00")},
        [], metrics())]),
    (UPEMAIL, [(
        [("email", "api+new@mailchimp.com")],
        {"email": ("api+new@mailchimp.com", "mailchimp", "2009-03-26T22:15:09+00:00")},
        [], metrics())]),
    (CLEANED, [(
        [("email", "api+cleaned@mailchimp.com")],
        {"email": ("api+cleaned@mailchimp.com", "mailchimp", "2009-03-26T22:01:00+00:00"),
         "email_consent": ("cleaned", "mailchimp", "2009-03-26T22:01:00+00:00")},
        [("email.bounced", key_of(CLEANED), "2009-03-26T22:01:00+00:00",
          {"list_id": "a6b5da1054", "campaign_id": "4fjk2ma9xd", "reason": "hard"})],
        metrics("2009-03-26T22:01:00+00:00", "2009-03-26T22:01:00+00:00"))]),
    (CAMPAIGN, []),
], ids=["subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign"])
def test_each_documented_notification_maps_to_exactly_this_store(app, db_engine, fields, expected):
    send(app, fields)
    assert people(db_engine) == expected


def test_an_address_cleaned_for_abuse_is_a_spam_report(app, db_engine):
    abuse = changed(CLEANED, data__reason="abuse")
    send(app, abuse)
    [(_, traits, timeline, _)] = people(db_engine)
    assert traits["email_consent"] == ("cleaned", "mailchimp", "2009-03-26T22:01:00+00:00")
    assert timeline == [("email.spam_reported", key_of(abuse), "2009-03-26T22:01:00+00:00",
                         {"list_id": "a6b5da1054", "campaign_id": "4fjk2ma9xd", "reason": "abuse"})]


PROFILE_LATER = changed(PROFILE, fired_at="2009-03-26 21:50:00", data__merges__FNAME="Chimp",
                        data__merges__PHONE="(415) 555-2671")
UNSUBSCRIBE_SAME = changed(UNSUBSCRIBE, data__email="api@mailchimp.com", data__merges__EMAIL="api@mailchimp.com")
UPEMAIL_OF_API = changed(UPEMAIL, data__old_email="api@mailchimp.com")
PROFILE_OF_NEW = changed(PROFILE, fired_at="2009-03-26 22:30:00", data__id="51da8c3259",
                         data__email="api+new@mailchimp.com", data__merges__EMAIL="api+new@mailchimp.com")


def test_a_member_who_changes_address_stays_one_person(app, db_engine):
    send(app, SUBSCRIBE, PROFILE_LATER, UNSUBSCRIBE_SAME)
    send(app, UPEMAIL_OF_API)
    later = "2009-03-26T21:50:00+00:00"
    unsubscribed = "2009-03-26T21:40:57+00:00"
    assert people(db_engine) == [(
        [("email", "api+new@mailchimp.com"), ("mailchimp_member_id", "8a25ff1d98"), ("phone", "+14155552671")],
        {"email": ("api+new@mailchimp.com", "mailchimp", "2009-03-26T22:15:09+00:00"),
         "first_name": ("Chimp", "mailchimp", later), "last_name": ("API", "mailchimp", later),
         "phone": ("+14155552671", "mailchimp", later),
         "email_consent": ("unsubscribed", "mailchimp", unsubscribed)},
        [("email.subscribed", key_of(SUBSCRIBE), SUBSCRIBED_AT, {"list_id": "a6b5da1054"}),
         ("email.unsubscribed", key_of(UNSUBSCRIBE_SAME), unsubscribed,
          {"list_id": "a6b5da1054", "campaign_id": "cb398d21d2", "action": "unsub", "reason": "manual"})],
        metrics(SUBSCRIBED_AT, unsubscribed))]


def test_after_a_change_of_address_the_new_member_id_joins_when_the_limit_allows(make_app, db_engine):
    app = make_app(connectors={"echo": {"enabled": False}, "mailchimp": {"enabled": True, "webhook_key": KEY}},
                   identity={"limits": {"mailchimp_member_id": 5}})
    send(app, SUBSCRIBE, UPEMAIL_OF_API)
    send(app, PROFILE_OF_NEW)
    [(identities, traits, _, _)] = people(db_engine)
    assert identities == [("email", "api+new@mailchimp.com"), ("mailchimp_member_id", "51da8c3259"),
                          ("mailchimp_member_id", "8a25ff1d98")]
    assert traits["email"] == ("api+new@mailchimp.com", "mailchimp", "2009-03-26T22:30:00+00:00")


def test_after_a_change_of_address_the_new_member_id_joins_with_the_default_limit(app, db_engine):
    send(app, SUBSCRIBE, UPEMAIL_OF_API)
    send(app, PROFILE_OF_NEW)
    assert len(people(db_engine)) == 1


def test_an_older_notification_arriving_late_leaves_the_newer_traits(app, db_engine):
    send(app, PROFILE_LATER, UNSUBSCRIBE_SAME)
    before = people(db_engine)
    send(app, SUBSCRIBE)
    [(identities, traits, timeline, _)] = people(db_engine)
    assert (identities, traits) == before[0][:2]
    assert traits["first_name"] == ("Chimp", "mailchimp", "2009-03-26T21:50:00+00:00")
    assert traits["email_consent"] == ("unsubscribed", "mailchimp", "2009-03-26T21:40:57+00:00")
    assert [a[0] for a in timeline] == ["email.subscribed", "email.unsubscribed"]


def test_a_redelivery_changes_nothing(app, db_engine):
    send(app, SUBSCRIBE, PROFILE_LATER)
    before = people(db_engine)
    client = app.test_client()
    assert post(client, SUBSCRIBE).status_code == 200
    assert post(client, list(reversed(PROFILE_LATER))).status_code == 200
    drain(app)
    assert people(db_engine) == before
