"""``hub sync mailchimp``: audience members from the Marketing API, offset pages, ``since_last_changed``.

``responses`` fakes the API in its documented shape (``members``, ``total_items``, HTTP
Basic with the key); the end-to-end tests process the pulled members into profiles and
compare them with what the webhooks make. Also home of the pull fixtures and checks the
Klaviyo and SendGrid pull tests import (with the harness of ``test_zendesk_pull``).
"""
from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest
import requests

from connectors import mailchimp
from hub.sync import NotSyncable, SyncError
from tests.conftest import inbox_rows, settle
from tests.connectors.test_mailchimp import KEY, SUBSCRIBE, post
from tests.connectors.test_zendesk_pull import Puller, pulling
from tests.mappings.test_mailchimp import metrics, people
from tests.test_sync import api, urls  # noqa: F401 (api: a fixture)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
API_KEY = "5f3c1e9a7b2d4c6e8f0a1b3c5d7e9f21-us6"
BASE = "https://us6.api.mailchimp.com/3.0"
MEMBERS = f"{BASE}/lists/a6b5da1054/members"
SETTINGS = {"enabled": True, "webhook_key": KEY, "api_key": API_KEY, "list_id": "a6b5da1054"}
AUTHORIZATION = "Basic " + base64.b64encode(f"tributary:{API_KEY}".encode()).decode()


def pull_fixtures(connector: str, settings: dict):
    """The fixtures ``pull`` (records stored, not processed) and ``hub`` (processed) for a connector."""

    @pytest.fixture
    def pull(make_app):
        return pulling(make_app, connector, settings)

    @pytest.fixture
    def hub(make_app):
        return pulling(make_app, connector, settings, process=True)

    return pull, hub


def pages_of_two(module, name: str):
    """An autouse fixture setting ``module.name``, a page size, to 2: a few records make several pages."""

    @pytest.fixture(autouse=True)
    def two_a_page(monkeypatch):
        monkeypatch.setattr(module, name, 2)

    return two_a_page


def refuses_the_key(pull: Puller, api, url: str, stream: str, answer: dict, secret: str) -> None:
    """A 401 at ``url`` stops ``stream`` with a message naming the endpoint, never the secret."""
    api.get(url, status=401, json=answer)
    with pytest.raises(SyncError) as raised:
        pull.run(stream)
    assert raised.value.errors == {stream: f"GET {url.split('?')[0]} answered 401 Unauthorized"}
    assert secret not in str(raised.value)
    assert (pull.keys(), pull.sleeps) == ([], [])


def load(connector: str, name: str):
    """A recorded API answer: ``tests/fixtures/<connector>/<name>.json``."""
    return json.loads((FIXTURES / connector / f"{name}.json").read_text())


def compact(record) -> bytes:
    """A record as the inbox keeps it: compact JSON with sorted keys."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


two_a_page = pages_of_two(mailchimp, "MEMBERS_PER_PAGE")  # Mailchimp's pages hold 1,000
pull, hub = pull_fixtures("mailchimp", SETTINGS)


def at(offset: int, since: str | None = None) -> str:
    """The members page at ``offset``, changed since ``since`` (URL-encoded ISO 8601)."""
    cursor = f"&since_last_changed={since}" if since else ""
    return f"{MEMBERS}?exclude_fields=members._links{cursor}&offset={offset}&count=2"


def member_key(member: dict) -> str:
    return f"pull:members:{member['id']}:{member['last_changed']}"


PAGE_1, PAGE_2, PAGE_3 = (load("mailchimp", f"pull_members_{n}") for n in (1, 2, 3))
ALL = PAGE_1["members"] + PAGE_2["members"]


def serve_both_pages(api) -> None:
    api.get(at(0), json=PAGE_1)
    api.get(at(2), json=PAGE_2)


# -- the API calls ---------------------------------------------------------------------------

def test_members_come_page_by_page_until_total_items_with_the_key_as_basic_password(pull, api):
    serve_both_pages(api)
    assert pull.run() == {"members": 4}
    assert urls(api) == [f"{MEMBERS}?exclude_fields=members._links&offset=0&count=2",
                         f"{MEMBERS}?exclude_fields=members._links&offset=2&count=2"]
    assert [call.request.headers["Authorization"] for call in api.calls] == [AUTHORIZATION] * 2
    assert pull.keys() == [
        "pull:members:0cba00ca3da1b283a57287bcceb17e35:2024-05-02T09:15:00+00:00",
        "pull:members:592420f511a1d0373908c3c34ddaf71f:2024-05-03T14:40:05+00:00",
        "pull:members:6ae0a7d14e77ddee10cfad3a375283ff:2024-05-01T07:00:00+00:00",
        "pull:members:bb2faf1ec4588f769574b365e312819a:2024-05-04T02:10:00+00:00"]
    assert [member_key(m) for m in ALL] == pull.keys()
    assert pull.topics() == ["api:member"] * 4
    assert [row[2] for row in inbox_rows(pull.app)] == [compact(m) for m in ALL]
    assert pull.state("members") == {"cursor": "2024-05-04T02:10:00+00:00"}
    assert pull.sleeps == []


def test_the_next_run_asks_only_for_members_changed_since_the_latest(pull, api):
    serve_both_pages(api)
    pull.run()
    api.get(at(0, "2024-05-04T02%3A10%3A00%2B00%3A00"), json=PAGE_3)
    assert pull.run() == {"members": 1}
    assert urls(api)[2:] == [f"{MEMBERS}?exclude_fields=members._links"
                             "&since_last_changed=2024-05-04T02%3A10%3A00%2B00%3A00&offset=0&count=2"]
    assert pull.keys()[4:] == [member_key(PAGE_3["members"][0])]
    assert pull.state("members") == {"cursor": "2024-05-06T08:30:00+00:00"}


def test_429_and_500_are_retried_with_backoff(pull, api):
    """Mailchimp limits connections, not a rate, and sends no Retry-After: the backoff applies."""
    api.get(at(0), status=429, json={"title": "Too Many Requests", "status": 429,
                                     "detail": "You have exceeded the limit of 10 simultaneous connections."})
    api.get(at(0), status=500, json={"title": "Internal Server Error", "status": 500})
    serve_both_pages(api)
    assert pull.run() == {"members": 4}
    assert pull.sleeps == [0.5, 1.0]


def test_a_run_cut_after_page_one_resumes_at_page_two(pull, api):
    api.get(at(0), json=PAGE_1)
    api.get(at(2), body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run(retries=0)
    assert raised.value.errors == {"members": f"GET {MEMBERS} failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"members": 2}
    assert pull.state("members") == {
        "cursor": "2024-05-03T14:40:05+00:00", "started_cursor": None,
        "next": {"url": MEMBERS, "params": {"exclude_fields": "members._links", "offset": 2, "count": 2}}}
    api.reset()
    api.get(at(2), json=PAGE_2)
    assert pull.run() == {"members": 2}
    assert urls(api) == [at(2)]
    assert pull.keys() == [member_key(m) for m in ALL]
    assert pull.state("members") == {"cursor": "2024-05-04T02:10:00+00:00"}


def test_a_refused_key_stops_the_stream_without_showing_it(pull, api):
    refuses_the_key(pull, api, at(0), "members", {
        "title": "API Key Invalid", "status": 401,
        "detail": "Your API key may be invalid, or you've attempted to access the wrong datacenter."}, API_KEY)


@pytest.mark.parametrize("settings, message", [
    ({}, "connector 'mailchimp' needs api_key and list_id in its configuration to pull from the Mailchimp API"),
    ({"api_key": API_KEY}, "connector 'mailchimp' needs list_id in its configuration to pull from the Mailchimp API"),
    ({"api_key": "5f3c1e9a7b2d4c6e8f0a1b3c5d7e9f21", "list_id": "a6b5da1054"},
     "connector 'mailchimp': api_key must end with its data center (like -us6)"),
])
def test_missing_settings_are_named_before_any_call(make_app, api, settings, message):
    with pytest.raises(NotSyncable) as raised:
        pulling(make_app, "mailchimp", {"enabled": True, "webhook_key": KEY, **settings}).run()
    assert str(raised.value) == message
    assert "5f3c1e9a7b2d4c6e8f0a1b3c5d7e9f21" not in str(raised.value)


def test_the_api_base_is_the_keys_data_center_unless_overridden():
    connector = mailchimp.Mailchimp()
    assert connector.api_base(SETTINGS) == BASE
    assert connector.api_base({**SETTINGS, "api_key": "0123-us19"}) == "https://us19.api.mailchimp.com/3.0"
    assert connector.api_base({**SETTINGS, "api_base": "http://127.0.0.1:9000/3.0"}) == "http://127.0.0.1:9000/3.0"
    assert connector.api_base({**SETTINGS, "api_key": "no-data-center-here"}) == ""


def test_a_sandbox_api_base_without_a_data_center_in_the_key(make_app, api):
    sandbox = pulling(make_app, "mailchimp", {**SETTINGS, "api_key": "test-key", "api_base": "http://sandbox.test/3.0"})
    api.get("http://sandbox.test/3.0/lists/a6b5da1054/members?exclude_fields=members._links&offset=0&count=2",
            json={**PAGE_2, "total_items": 2})
    assert sandbox.run() == {"members": 2}


# -- end to end: pulled members in profiles ---------------------------------------------------

def traits(moment: str, email: str, first: str, last: str, **more) -> dict:
    """The traits a member gives, all observed at its ``last_changed``."""
    found = {"email": email, "first_name": first, "last_name": last, **more}
    return {name: (value, "mailchimp", moment) for name, value in found.items()}


JANE_AT, OMAR_AT, LI_AT, ANA_AT = ("2024-05-02T09:15:00+00:00", "2024-05-03T14:40:05+00:00",
                                   "2024-05-01T07:00:00+00:00", "2024-05-04T02:10:00+00:00")
JANE = [("email", "jane.doe@example.com"), ("mailchimp_member_id", "3f1c9a7b2e"), ("phone", "+14155550134")]


def test_pulled_members_become_people_with_their_consent(hub, api, db_engine):
    """transactional is no consent; subscribed, unsubscribed and cleaned are."""
    serve_both_pages(api)
    hub.run()
    settle(hub.app)
    assert people(db_engine) == [
        ([("email", "bounced@example.com"), ("mailchimp_member_id", "e90b7c2d13")],
         traits(ANA_AT, "bounced@example.com", "Ana", "Lima", email_consent="cleaned"), [], metrics()),
        (JANE, traits(JANE_AT, "jane.doe@example.com", "Jane", "Doe", phone="+14155550134",
                      email_consent="subscribed"), [], metrics()),
        ([("email", "li.wei@example.net"), ("mailchimp_member_id", "c5a8e31f04")],
         traits(LI_AT, "li.wei@example.net", "Li", "Wei"), [], metrics()),
        ([("email", "omar@example.org"), ("mailchimp_member_id", "7d2e4b6a90")],
         traits(OMAR_AT, "omar@example.org", "Omar", "Haddad", email_consent="unsubscribed"), [], metrics()),
    ]


def test_a_later_version_of_a_member_updates_the_same_person(hub, api, db_engine):
    serve_both_pages(api)
    hub.run()
    api.get(at(0, "2024-05-04T02%3A10%3A00%2B00%3A00"), json=PAGE_3)
    hub.run()
    settle(hub.app)
    later = "2024-05-06T08:30:00+00:00"
    assert [person for person in people(db_engine) if person[0] == JANE] == [
        (JANE, traits(later, "jane.doe@example.com", "Jane", "Doe-Smith", phone="+14155550134",
                      email_consent="unsubscribed"), [], metrics())]


def subscribed_member() -> dict:
    """The member the documented subscribe notification describes, as the API lists it."""
    member = copy.deepcopy(PAGE_1["members"][0])
    member.update(id="6def22f266be37015519943ce0c3ae6b", email_address="api@mailchimp.com",
                  unique_email_id="8a25ff1d98", last_changed="2009-03-26T21:35:57+00:00", full_name="Mailchimp API")
    member["merge_fields"].update(FNAME="Mailchimp", LNAME="API", PHONE="")
    return member


@pytest.mark.parametrize("webhook_first", [True, False])
def test_a_member_pulled_and_notified_is_one_person_with_the_same_traits(hub, api, db_engine, webhook_first):
    """The pull adds no activity (the notification's is its content hash); identities and traits agree."""
    api.get(at(0), json={**PAGE_1, "members": [subscribed_member()], "total_items": 1})
    steps = [lambda: post(hub.app.test_client(), SUBSCRIBE), hub.run]
    for step in steps if webhook_first else reversed(steps):
        step()
        settle(hub.app)
    [(identities, found, timeline, _)] = people(db_engine)
    assert identities == [("email", "api@mailchimp.com"), ("mailchimp_member_id", "8a25ff1d98")]
    assert found == traits("2009-03-26T21:35:57+00:00", "api@mailchimp.com", "Mailchimp", "API",
                           email_consent="subscribed")
    assert [entry[0] for entry in timeline] == ["email.subscribed"]
