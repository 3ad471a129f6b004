"""``hub sync klaviyo``: profiles and events from the JSON:API, ``links.next``, cursor filters.

``responses`` fakes Klaviyo in its documented shape (``data``, ``links.next``, ``included``
metrics, 429 with Retry-After); the end-to-end tests process the pulled records and compare
them with what the same events make when Klaviyo's webhooks deliver them.
"""
from __future__ import annotations

import copy

import pytest
import requests

from connectors.klaviyo import Klaviyo
from hub.sync import NotSyncable, SyncError
from tests.conftest import inbox_rows, settle
from tests.connectors.test_klaviyo import BATCH, SECRET, send
from tests.connectors.test_mailchimp_pull import compact, load, pull_fixtures, refuses_the_key
from tests.connectors.test_zendesk_pull import pulling
from tests.mappings.test_klaviyo import EMAIL_EVENTS, EMAIL_PEOPLE, JANE
from tests.mappings.test_mailchimp import metrics, people
from tests.test_sync import api, urls  # noqa: F401 (api: a fixture)

API_KEY = "pk_5f3c1e9a7b2d4c6e8f0a1b3c5d7e9f2104"
BASE = "https://a.klaviyo.com/api"
SETTINGS = {"enabled": True, "webhook_secret": SECRET, "api_key": API_KEY}
EVENTS = f"{BASE}/events?include=metric&fields%5Bmetric%5D=name&sort=datetime"
PROFILES = f"{BASE}/profiles?page%5Bsize%5D=100&additional-fields%5Bprofile%5D=subscriptions&sort=updated"
EVENTS_1, EVENTS_2 = load("klaviyo", "pull_events_1"), load("klaviyo", "pull_events_2")
PROFILES_1, PROFILES_2, PROFILES_3 = (load("klaviyo", f"pull_profiles_{n}") for n in (1, 2, 3))

pull, hub = pull_fixtures("klaviyo", SETTINGS)


def serve(api, first: str, *pages: dict) -> None:
    """Serve pages: the first at ``first``, each next one at the previous page's ``links.next``."""
    url = first
    for page in pages:
        api.get(url, json=page)
        url = page["links"]["next"]


def inlined(page: dict) -> list[dict]:
    """The page's events as stored: each metric's attributes copied from ``included``."""
    names = {item["id"]: item["attributes"] for item in page["included"]}
    events = copy.deepcopy(page["data"])
    for event in events:
        linkage = event["relationships"]["metric"]["data"]
        linkage["attributes"] = names[linkage["id"]]
    return events


ALL_EVENTS = inlined(EVENTS_1) + inlined(EVENTS_2)
EVENT_KEYS = [f"pull:events:{e['id']}:{e['attributes']['datetime']}" for e in ALL_EVENTS]


# -- the API calls ---------------------------------------------------------------------------

def test_events_follow_links_next_with_the_private_key_and_the_pinned_revision(pull, api):
    serve(api, EVENTS, EVENTS_1, EVENTS_2)
    assert pull.run("events") == {"events": 7}
    assert urls(api) == [EVENTS, EVENTS_1["links"]["next"]]
    assert [(call.request.headers["Authorization"], call.request.headers["revision"]) for call in api.calls] == \
        [(f"Klaviyo-API-Key {API_KEY}", "2026-04-15")] * 2
    assert pull.keys() == EVENT_KEYS
    assert EVENT_KEYS[:2] == ["pull:events:73WCCK7JKtE:2026-04-13T22:16:46+00:00",
                              "pull:events:3RtWqPz8Lk2:2026-04-13T22:45:12+00:00"]
    assert pull.topics() == ["api:event"] * 7
    assert [row[2] for row in inbox_rows(pull.app)] == [compact(event) for event in ALL_EVENTS]
    assert ALL_EVENTS[0]["relationships"]["metric"]["data"] == {
        "type": "metric", "id": "SHi67A", "attributes": {"name": "Subscribed to List"}}
    assert pull.state("events") == {"cursor": "2026-04-13T23:05:00+00:00"}
    assert pull.sleeps == []


def test_the_next_events_run_filters_on_datetime_from_the_latest(pull, api):
    serve(api, EVENTS, EVENTS_1, EVENTS_2)
    pull.run("events")
    since = f"{EVENTS}&filter=greater-or-equal%28datetime%2C2026-04-13T23%3A05%3A00%2B00%3A00%29"
    api.get(since, json={**EVENTS_2, "data": EVENTS_2["data"][-1:], "links": {"self": since, "next": None}})
    assert pull.run("events") == {"events": 0}  # the boundary event again: already stored
    assert urls(api)[2:] == [since]
    assert pull.state("events") == {"cursor": "2026-04-13T23:05:00+00:00"}


def test_profiles_ask_for_subscriptions_then_for_those_updated_since(pull, api):
    """Profiles filter ``updated`` with ``greater-than`` only: the filter starts one second earlier."""
    serve(api, PROFILES, PROFILES_1, PROFILES_2)
    assert pull.run("profiles") == {"profiles": 4}
    assert urls(api) == [PROFILES, PROFILES_1["links"]["next"]]
    assert pull.keys() == ["pull:profiles:01KP4F7Q2W8E4R6T8Y0U2I4O6P:2026-04-13T22:45:21+00:00",
                           "pull:profiles:01KP4G1A3S5D7F9G1H3J5K7L9Z:2026-04-13T22:58:42+00:00",
                           f"pull:profiles:{JANE}:2026-04-13T23:05:00+00:00",
                           "pull:profiles:01KP4J8M2N4B6V8C0X2Z4L6K8J:2026-04-14T08:00:00+00:00"]
    assert pull.state("profiles") == {"cursor": "2026-04-14T08:00:00+00:00"}
    since = f"{PROFILES}&filter=greater-than%28updated%2C2026-04-14T07%3A59%3A59%2B00%3A00%29"
    api.get(since, json=PROFILES_3)
    assert pull.run("profiles") == {"profiles": 1}
    assert urls(api)[2:] == [since]
    assert pull.keys()[4:] == [f"pull:profiles:{JANE}:2026-04-15T10:00:00+00:00"]
    assert pull.topics() == ["api:profile"] * 5


def test_429_waits_for_retry_after_and_a_500_is_retried(pull, api):
    api.get(EVENTS, status=429, headers={"Retry-After": "7"},
            json={"errors": [{"id": "1f7c", "status": 429, "code": "throttled", "title": "Request was throttled.",
                              "detail": "Request was throttled. Expected available in 7 seconds."}]})
    api.get(EVENTS, status=500,
            json={"errors": [{"status": 500, "code": "error", "title": "A server error occurred."}]})
    serve(api, EVENTS, EVENTS_1, EVENTS_2)
    assert pull.run("events") == {"events": 7}
    assert pull.sleeps == [7.0, 1.0]  # Retry-After, then the backoff 0.5 * 2
    assert pull.keys() == EVENT_KEYS


def test_a_run_cut_after_page_one_resumes_at_page_two(pull, api):
    after = EVENTS_1["links"]["next"]
    api.get(EVENTS, json=EVENTS_1)
    api.get(after, body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run("events", retries=0)
    assert raised.value.errors == {"events": f"GET {BASE}/events failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"events": 4}
    assert pull.state("events") == {"cursor": "2026-04-13T22:48:03+00:00", "started_cursor": None,
                                    "next": {"url": after, "params": {}}}
    api.reset()
    api.get(after, json=EVENTS_2)
    assert pull.run("events") == {"events": 3}
    assert urls(api) == [after]
    assert pull.keys() == EVENT_KEYS
    assert pull.state("events") == {"cursor": "2026-04-13T23:05:00+00:00"}


def test_a_refused_key_stops_the_stream_without_showing_it(pull, api):
    refuses_the_key(pull, api, PROFILES, "profiles", {"errors": [{
        "status": 401, "code": "not_authenticated", "title": "Authentication credentials were not provided."}]},
        API_KEY)


def test_a_missing_key_is_named_before_any_call(make_app, api):
    with pytest.raises(NotSyncable) as raised:
        pulling(make_app, "klaviyo", {"enabled": True, "webhook_secret": SECRET}).run()
    assert str(raised.value) == "connector 'klaviyo' needs api_key in its configuration to pull from the Klaviyo API"


def test_the_api_base_is_klaviyos_unless_overridden():
    assert Klaviyo().api_base(SETTINGS) == BASE
    assert Klaviyo().api_base({**SETTINGS, "api_base": "http://127.0.0.1:9000/api"}) == "http://127.0.0.1:9000/api"


# -- end to end: pulled records in profiles -----------------------------------------------------

def test_pulled_events_make_the_store_the_webhooks_make(hub, api, db_engine):
    serve(api, EVENTS, EVENTS_1, EVENTS_2)
    hub.run("events")
    settle(hub.app)
    assert people(db_engine) == EMAIL_PEOPLE


@pytest.mark.parametrize("webhooks_first", [True, False])
def test_an_event_both_delivered_and_pulled_is_one_activity(hub, api, db_engine, webhooks_first):
    serve(api, EVENTS, EVENTS_1, EVENTS_2)
    steps = [lambda: [send(hub.app.test_client(), body) for body in (BATCH, EMAIL_EVENTS)],
             lambda: hub.run("events")]
    for step in steps if webhooks_first else reversed(steps):
        step()
        settle(hub.app)
    assert people(db_engine) == EMAIL_PEOPLE


def test_pulled_profiles_bring_identities_names_and_consent(hub, api, db_engine):
    """A suppression says more than the consent: a hard bounce is bounced, a complaint spam_reported."""
    serve(api, PROFILES, PROFILES_1, PROFILES_2)
    hub.run("profiles")
    settle(hub.app)
    jane_at = "2026-04-13T23:05:00+00:00"
    assert people(db_engine) == [
        ([("email", "angry.reader@example.org"), ("klaviyo_profile_id", "01KP4G1A3S5D7F9G1H3J5K7L9Z")],
         {"email": ("angry.reader@example.org", "klaviyo", "2026-04-13T22:58:42+00:00"),
          "email_consent": ("spam_reported", "klaviyo", "2026-04-13T22:58:42+00:00")}, [], metrics()),
        ([("email", "jane.doe@example.com"), ("klaviyo_external_id", "shop-1001"), ("klaviyo_profile_id", JANE),
          ("phone", "+14155550134")],
         {name: (value, "klaviyo", jane_at) for name, value in (
             ("email", "jane.doe@example.com"), ("phone", "+14155550134"), ("first_name", "Jane"),
             ("last_name", "Doe"), ("email_consent", "unsubscribed"))}, [], metrics()),
        ([("email", "old.address@example.net"), ("klaviyo_profile_id", "01KP4F7Q2W8E4R6T8Y0U2I4O6P")],
         {name: (value, "klaviyo", "2026-04-13T22:45:21+00:00") for name, value in (
             ("email", "old.address@example.net"), ("first_name", "Sam"), ("last_name", "Roe"),
             ("email_consent", "bounced"))}, [], metrics()),
        ([("klaviyo_profile_id", "01KP4J8M2N4B6V8C0X2Z4L6K8J"), ("phone", "+33612345678")],
         {name: (value, "klaviyo", "2026-04-14T08:00:00+00:00") for name, value in (
             ("phone", "+33612345678"), ("first_name", "Chloé"), ("last_name", "Martin"))}, [], metrics()),
    ]


def test_profiles_and_events_pulled_together_join_on_the_profile_id(hub, api, db_engine):
    serve(api, PROFILES, PROFILES_1, PROFILES_2)
    serve(api, EVENTS, EVENTS_1, EVENTS_2)
    hub.run()
    settle(hub.app)
    api.get(f"{PROFILES}&filter=greater-than%28updated%2C2026-04-14T07%3A59%3A59%2B00%3A00%29", json=PROFILES_3)
    hub.run("profiles")
    settle(hub.app)
    [jane] = [person for person in people(db_engine) if ("klaviyo_profile_id", JANE) in person[0]]
    later = "2026-04-15T10:00:00+00:00"
    assert jane[:2] == (
        [("email", "jane.doe@example.com"), ("klaviyo_external_id", "shop-1001"), ("klaviyo_profile_id", JANE),
         ("phone", "+14155550134")],
        {"email": ("jane.doe@example.com", "klaviyo", later), "phone": ("+14155550134", "klaviyo", later),
         "first_name": ("Jane", "klaviyo", later), "last_name": ("Doe-Smith", "klaviyo", later),
         "email_consent": ("subscribed", "klaviyo", later)})
    assert jane[2:] == EMAIL_PEOPLE[0][2:]
    assert len(people(db_engine)) == 4
