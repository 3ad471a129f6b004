"""``hub sync sendgrid``: the bounce, global unsubscribe and spam report suppression lists.

``responses`` fakes SendGrid in its documented shape (bare JSON arrays of ``{created, email,
...}``, ``limit``/``offset``, ``start_time`` in unix seconds, ``X-RateLimit-*`` headers); the
end-to-end tests process the pulled entries and compare them with the Event Webhook's records.
"""
from __future__ import annotations

import json

import pytest
import requests

from connectors import sendgrid
from hub.sync import NotSyncable, SyncError
from tests.conftest import settle
from tests.connectors.test_mailchimp_pull import load, pages_of_two, pull_fixtures, refuses_the_key
from tests.connectors.test_sendgrid import EVENTS, PUBLIC
from tests.connectors.test_zendesk_pull import pulling
from tests.mappings.test_mailchimp import metrics, people
from tests.mappings.test_sendgrid import send
from tests.test_sync import api, urls  # noqa: F401 (api: a fixture)

API_KEY = "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"
BASE = "https://api.sendgrid.com/v3"
SETTINGS = {"enabled": True, "verification_key": PUBLIC, "api_key": API_KEY}
BOUNCES = f"{BASE}/suppression/bounces"
BOUNCES_1, BOUNCES_2 = load("sendgrid", "pull_bounces_1"), load("sendgrid", "pull_bounces_2")
two_a_page = pages_of_two(sendgrid, "ENTRIES_PER_PAGE")  # SendGrid's pages hold 500
pull, hub = pull_fixtures("sendgrid", SETTINGS)


def at(url: str, offset: int, start_time: int | None = None) -> str:
    since = f"start_time={start_time}&" if start_time is not None else ""
    return f"{url}?{since}offset={offset}&limit=2"


def serve(api, url: str, *pages: list, start_time: int | None = None) -> None:
    """Serve the pages at offsets 0, 2, 4... then the empty page that ends the list."""
    for n, entries in enumerate([*pages, []]):
        api.get(at(url, 2 * n, start_time), json=entries)


def serve_all(api) -> None:
    serve(api, BOUNCES, BOUNCES_1, BOUNCES_2)
    serve(api, f"{BASE}/suppression/unsubscribes", load("sendgrid", "pull_unsubscribes"))
    serve(api, f"{BASE}/suppression/spam_reports", load("sendgrid", "pull_spam_reports"))


BOUNCE_KEYS = ["pull:bounces:bounce@example.net:1700000200", "pull:bounces:gone@example.com:1699990000",
               "pull:bounces:Full.Box@example.org:1700000250"]


# -- the API calls ---------------------------------------------------------------------------

def test_each_list_is_read_in_offset_windows_until_an_empty_page(pull, api):
    serve_all(api)
    assert pull.run() == {"bounces": 3, "unsubscribes": 2, "spam_reports": 1}
    assert urls(api) == [at(BOUNCES, 0), at(BOUNCES, 2), at(BOUNCES, 4),
                         at(f"{BASE}/suppression/unsubscribes", 0), at(f"{BASE}/suppression/unsubscribes", 2),
                         at(f"{BASE}/suppression/spam_reports", 0), at(f"{BASE}/suppression/spam_reports", 2)]
    assert {(call.request.headers["Authorization"], call.request.headers["Accept"]) for call in api.calls} == \
        {(f"Bearer {API_KEY}", "application/json")}
    assert pull.keys() == BOUNCE_KEYS + [
        "pull:unsubscribes:jane.doe@example.com:1700000400", "pull:unsubscribes:old.reader@example.com:1699900000",
        "pull:spam_reports:angry@example.org:1700000300"]
    assert pull.topics() == ["api:bounce"] * 3 + ["api:unsubscribe"] * 2 + ["api:spam_report"]
    assert [pull.state(s) for s in ("bounces", "unsubscribes", "spam_reports")] == [
        {"cursor": 1700000250}, {"cursor": 1700000400}, {"cursor": 1700000300}]
    assert pull.sleeps == []


def test_the_next_run_starts_at_the_latest_created_in_unix_seconds(pull, api):
    serve(api, BOUNCES, BOUNCES_1, BOUNCES_2)
    pull.run("bounces")
    again = {"created": 1700000990, "email": "new.bounce@example.com", "reason": "550 5.1.1 User unknown",
             "status": "5.1.1"}
    serve(api, BOUNCES, [BOUNCES_2[0], again], start_time=1700000250)
    assert pull.run("bounces") == {"bounces": 1}  # the boundary entry again: already stored
    assert urls(api)[3:] == [f"{BOUNCES}?start_time=1700000250&offset=0&limit=2",
                             f"{BOUNCES}?start_time=1700000250&offset=2&limit=2"]
    assert pull.keys()[3:] == ["pull:bounces:new.bounce@example.com:1700000990"]
    assert pull.state("bounces") == {"cursor": 1700000990}


def test_429_and_500_are_retried_with_backoff(pull, api):
    """SendGrid's 429 names its reset time, not a Retry-After: the backoff applies."""
    api.get(at(BOUNCES, 0), status=429, json={"errors": [{"field": None, "message": "too many requests"}]},
            headers={"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000260"})
    api.get(at(BOUNCES, 0), status=500, json={"errors": [{"field": None, "message": "internal error"}]})
    serve(api, BOUNCES, BOUNCES_1, BOUNCES_2)
    assert pull.run("bounces") == {"bounces": 3}
    assert pull.sleeps == [0.5, 1.0]


def test_a_spent_rate_limit_waits_until_its_reset(pull, api, monkeypatch):
    monkeypatch.setattr(sendgrid, "clock", lambda: 1700000248.5)
    api.get(at(BOUNCES, 0), json=BOUNCES_1,
            headers={"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000260"})
    api.get(at(BOUNCES, 2), json=BOUNCES_2,
            headers={"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "599", "X-RateLimit-Reset": "1700000320"})
    api.get(at(BOUNCES, 4), json=[])
    assert pull.run("bounces") == {"bounces": 3}
    assert pull.sleeps == [11.5]


def test_a_run_cut_after_page_one_resumes_at_page_two(pull, api):
    api.get(at(BOUNCES, 0), json=BOUNCES_1)
    api.get(at(BOUNCES, 2), body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run("bounces", retries=0)
    assert raised.value.errors == {"bounces": f"GET {BOUNCES} failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"bounces": 2}
    assert pull.state("bounces") == {"cursor": 1700000200, "started_cursor": None,
                                     "next": {"url": BOUNCES, "params": {"offset": 2, "limit": 2}}}
    api.reset()
    api.get(at(BOUNCES, 2), json=BOUNCES_2)
    api.get(at(BOUNCES, 4), json=[])
    assert pull.run("bounces") == {"bounces": 1}
    assert urls(api) == [at(BOUNCES, 2), at(BOUNCES, 4)]
    assert pull.keys() == BOUNCE_KEYS
    assert pull.state("bounces") == {"cursor": 1700000250}


def test_a_refused_key_stops_the_stream_without_showing_it(pull, api):
    refuses_the_key(pull, api, at(BOUNCES, 0), "bounces",
                    {"errors": [{"field": None, "message": "authorization required"}]}, API_KEY)


def test_a_missing_key_is_named_before_any_call(make_app, api):
    with pytest.raises(NotSyncable) as raised:
        pulling(make_app, "sendgrid", {"enabled": True, "verification_key": PUBLIC}).run()
    assert str(raised.value) == "connector 'sendgrid' needs api_key in its configuration to pull from the SendGrid API"


def test_the_api_base_is_sendgrids_unless_overridden():
    assert sendgrid.SendGrid().api_base(SETTINGS) == BASE
    assert sendgrid.SendGrid().api_base({**SETTINGS, "api_base": "http://127.0.0.1:9000/v3"}) == \
        "http://127.0.0.1:9000/v3"


# -- end to end: pulled entries in profiles -----------------------------------------------------

def person(email: str, consent: str, moment: str, activity: tuple) -> tuple:
    """One address's store: its consent since ``moment`` and the event that set it."""
    return ([("email", email)],
            {"email": (email, "sendgrid", moment), "email_consent": (consent, "sendgrid", moment)},
            [(*activity[:2], moment, activity[2])], metrics(moment, moment))


def test_pulled_entries_set_the_consent_and_add_the_event_that_set_it(hub, api, db_engine):
    serve_all(api)
    hub.run()
    settle(hub.app)
    assert people(db_engine) == [
        person("angry@example.org", "spam_reported", "2023-11-14T22:18:20+00:00",
               ("email.spam_reported", "pull:spam_reports:angry@example.org:1700000300", {})),
        person("bounce@example.net", "bounced", "2023-11-14T22:16:40+00:00",
               ("email.bounced", BOUNCE_KEYS[0], {"bounce_type": "bounce", "status": "5.1.1",
                                                  "reason": "550 5.1.1 The email account that you tried to reach "
                                                            "does not exist."})),
        person("full.box@example.org", "bounced", "2023-11-14T22:17:30+00:00",
               ("email.bounced", BOUNCE_KEYS[2], {"bounce_type": "bounce", "status": "5.2.2",
                                                  "reason": "552 5.2.2 The email account that you tried to reach "
                                                            "is over quota."})),
        person("gone@example.com", "bounced", "2023-11-14T19:26:40+00:00",
               ("email.bounced", BOUNCE_KEYS[1], {"bounce_type": "bounce", "status": "5.1.1",
                                                  "reason": "550 5.1.1 <gone@example.com>: Recipient address "
                                                            "rejected: User unknown in virtual alias table"})),
        person("jane.doe@example.com", "unsubscribed", "2023-11-14T22:20:00+00:00",
               ("email.unsubscribed", "pull:unsubscribes:jane.doe@example.com:1700000400", {})),
        person("old.reader@example.com", "unsubscribed", "2023-11-13T18:26:40+00:00",
               ("email.unsubscribed", "pull:unsubscribes:old.reader@example.com:1699900000", {})),
    ]


@pytest.mark.parametrize("kind, stream, entries", [
    ("bounce", "bounces", BOUNCES_1[:1]),
    ("spamreport", "spam_reports", load("sendgrid", "pull_spam_reports")),
    ("unsubscribe", "unsubscribes", load("sendgrid", "pull_unsubscribes")[:1]),
])
def test_an_entry_gives_the_identity_and_consent_its_webhook_event_gives(hub, api, db_engine, kind, stream, entries):
    """The entry carries no ``sg_event_id``: its activity is the same event, under another id."""
    [event] = [e for e in json.loads(EVENTS) if e["event"] == kind]
    send(hub.app, [event])
    [(identities, traits, [delivered], _)] = people(db_engine)
    serve(api, f"{BASE}/suppression/{stream}", entries)
    hub.run(stream)
    settle(hub.app)
    [(pulled_identities, pulled_traits, timeline, _)] = people(db_engine)
    assert (pulled_identities, pulled_traits) == (identities, traits)
    [pulled] = [activity for activity in timeline if activity != delivered]
    assert (pulled[0], pulled[2]) == (delivered[0], delivered[2])
