"""``hub sync freshdesk``: contacts and tickets from the REST API, 100 a page, by ``Link`` header.

``responses`` fakes the Freshdesk API in its documented shape (a JSON list per page, the
next page in ``Link: <...>; rel="next"``, rate-limit headers); the end-to-end tests then
process the pulled records into profiles and compare them with what the webhooks produce.
"""
from __future__ import annotations

import base64
import json
import logging
from urllib.parse import urlencode

import pytest
import requests

from connectors.freshdesk import end_at_page_limit, ticket_terms
from hub.config import ConfigError
from hub.models import SyncCursor
from hub.sync import NotSyncable, SyncError
from tests.conftest import inbox_rows, settle
from tests.connectors.test_freshdesk import PASSWORD, USERNAME, fixture, send
from tests.connectors.test_zendesk_pull import pulling
from tests.mappings.test_freshdesk import OPENED, RESOLVED
from tests.mappings.test_mailchimp import metrics, people
from tests.test_sync import api, urls  # noqa: F401 (api is a fixture)

BASE = "https://acme.freshdesk.com/api/v2"
API_KEY = "Xk4pQz7mRt2sVw9yB3nD"
SETTINGS = {"enabled": True, "webhook_username": USERNAME, "webhook_password": PASSWORD,
            "domain": "acme.freshdesk.com", "api_key": API_KEY}
AUTHORIZATION = "Basic " + base64.b64encode(f"{API_KEY}:X".encode()).decode()
EVER = "2000-01-01T00:00:00Z"
TICKET_QUERY = {"per_page": 100, "order_by": "updated_at", "order_type": "asc", "include": "requester"}
RATE = {"X-Ratelimit-Total": "200", "X-Ratelimit-Remaining": "187", "X-Ratelimit-Used-CurrentRequest": "1"}


def contacts(since: str | None = None) -> str:
    """The first contacts call: 100 a page, ``_updated_since`` from the second run on."""
    return f"{BASE}/contacts?" + urlencode({"per_page": 100, **({"_updated_since": since} if since else {})})


def tickets(since: str = EVER, page: int | None = None) -> str:
    """A tickets call; later pages are the ``Link`` URL, which Freshdesk writes in its own order."""
    if page is None:
        return f"{BASE}/tickets?" + urlencode({**TICKET_QUERY, "updated_since": since})
    return f"{BASE}/tickets?" + urlencode({"include": "requester", "order_by": "updated_at", "order_type": "asc",
                                           "page": page, "per_page": 100, "updated_since": since})


def listing(name: str) -> list[dict]:
    """A recorded page (``tests/fixtures/freshdesk/<name>.json``)."""
    return json.loads(fixture(name))


def serve(api, url: str, name: str, next_url: str | None = None) -> None:
    """Answer ``url`` with a recorded page, linking to ``next_url`` when given."""
    headers = {**RATE, **({"Link": f'<{next_url}>; rel="next"'} if next_url else {})}
    api.get(url, json=listing(name), headers=headers)


CONTACTS_2 = f"{BASE}/contacts?page=2&per_page=100"


def serve_everything(api) -> None:
    serve(api, contacts(), "pull_contacts_1", CONTACTS_2)
    serve(api, CONTACTS_2, "pull_contacts_2")
    serve(api, tickets(), "pull_tickets_1", tickets(page=2))
    serve(api, tickets(page=2), "pull_tickets_2")


@pytest.fixture
def pull(make_app):
    return pulling(make_app, "freshdesk", SETTINGS)


@pytest.fixture
def hub(make_app):
    return pulling(make_app, "freshdesk", SETTINGS, process=True)


# -- the API calls ---------------------------------------------------------------------------

def test_both_lists_follow_the_link_header_until_there_is_none(pull, api):
    serve_everything(api)
    assert pull.run() == {"contacts": 3, "tickets": 3}
    assert urls(api) == [contacts(), CONTACTS_2, tickets(), tickets(page=2)]
    assert tickets() == (f"{BASE}/tickets?per_page=100&order_by=updated_at&order_type=asc&include=requester"
                         "&updated_since=2000-01-01T00%3A00%3A00Z")
    assert [call.request.headers["Authorization"] for call in api.calls] == [AUTHORIZATION] * 4
    assert pull.keys() == [
        "pull:contacts:80012345:2026-03-01T09:00:00Z", "pull:contacts:80012377:2026-03-02T10:59:00Z",
        "pull:contacts:80012390:2026-03-02T13:20:00Z",
        "pull:tickets:1228307:2026-03-02T10:15:42Z", "pull:tickets:1228310:2026-03-02T12:30:00Z",
        "pull:tickets:1228315:2026-03-02T14:45:00Z"]
    assert pull.topics() == ["api:contact"] * 3 + ["api:ticket"] * 3
    assert inbox_rows(pull.app)[3][2] == json.dumps(listing("pull_tickets_1")[0], sort_keys=True,
                                                    separators=(",", ":")).encode()
    assert (pull.state("contacts"), pull.state("tickets")) == ({"cursor": "2026-03-02T13:20:00Z"},
                                                               {"cursor": "2026-03-02T14:45:00Z"})
    assert pull.sleeps == []


def test_the_next_run_asks_only_for_what_changed_since_the_latest_update(pull, api):
    serve_everything(api)
    pull.run()
    api.get(contacts(since="2026-03-02T13:20:00Z"), json=[], headers=RATE)
    serve(api, tickets(since="2026-03-02T14:45:00Z"), "pull_tickets_3")
    assert pull.run() == {"contacts": 0, "tickets": 1}  # 1228315 comes again, unchanged: stored once
    assert urls(api)[4:] == [f"{BASE}/contacts?per_page=100&_updated_since=2026-03-02T13%3A20%3A00Z",
                             tickets(since="2026-03-02T14:45:00Z")]
    assert pull.keys()[6:] == ["pull:tickets:1228307:2026-03-03T08:01:09Z"]
    assert pull.state("tickets") == {"cursor": "2026-03-03T08:01:09Z"}


def test_429_waits_for_retry_after_and_a_500_is_retried(pull, api):
    api.get(contacts(), status=429, headers={**RATE, "X-Ratelimit-Remaining": "0", "Retry-After": "23"},
            json={"message": "You have exceeded the limit of requests per minute"})
    api.get(contacts(), status=502)
    serve(api, contacts(), "pull_contacts_1", CONTACTS_2)
    serve(api, CONTACTS_2, "pull_contacts_2")
    assert pull.run("contacts") == {"contacts": 3}
    assert pull.sleeps == [23.0, 1.0]  # Retry-After, then backoff 0.5 * 2
    assert len(pull.keys()) == 3


def test_a_run_cut_after_page_one_resumes_at_page_two(pull, api):
    serve(api, tickets(), "pull_tickets_1", tickets(page=2))
    api.get(tickets(page=2), body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run("tickets", retries=0)
    assert raised.value.errors == {"tickets": f"GET {BASE}/tickets failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"tickets": 2}
    assert pull.state("tickets") == {"cursor": "2026-03-02T12:30:00Z", "started_cursor": None,
                                     "next": {"url": tickets(page=2), "params": {}}}
    api.reset()
    serve(api, tickets(page=2), "pull_tickets_2")
    assert pull.run("tickets") == {"tickets": 1}
    assert urls(api) == [tickets(page=2)]
    assert pull.keys() == ["pull:tickets:1228307:2026-03-02T10:15:42Z", "pull:tickets:1228310:2026-03-02T12:30:00Z",
                           "pull:tickets:1228315:2026-03-02T14:45:00Z"]
    assert pull.state("tickets") == {"cursor": "2026-03-02T14:45:00Z"}


def test_a_run_ends_at_the_300th_page_of_tickets_and_the_next_carries_on(pull, api, caplog):
    """Freshdesk answers 400 past page 300; the list is by update time, so the cursor resumes it."""
    with pull.hub.session.begin() as session:
        session.add(SyncCursor(connector="freshdesk", stream="tickets", state={
            "cursor": "2026-03-02T12:30:00Z", "started_cursor": None,
            "next": {"url": tickets(page=300), "params": {}}}))
    serve(api, tickets(page=300), "pull_tickets_2", tickets(page=301))
    with caplog.at_level(logging.WARNING, "connectors.freshdesk"):
        assert pull.run("tickets") == {"tickets": 1}
    assert urls(api) == [tickets(page=300)]
    assert caplog.messages == ["Freshdesk lists at most 300 pages of tickets; run hub sync again to pull the rest"]
    assert pull.state("tickets") == {"cursor": "2026-03-02T14:45:00Z"}
    serve(api, tickets(since="2026-03-02T14:45:00Z"), "pull_tickets_3")
    assert pull.run("tickets") == {"tickets": 1}


def test_only_ticket_lists_stop_at_page_300():
    response = requests.Response()
    response.headers["Link"] = f'<{BASE}/contacts?page=301&per_page=100>; rel="next"'
    assert end_at_page_limit(response).links["next"]["url"] == f"{BASE}/contacts?page=301&per_page=100"
    response.headers["Link"] = f'<{tickets(page=300)}>; rel="next"'
    assert end_at_page_limit(response).links["next"]["url"] == tickets(page=300)


def test_a_refused_key_stops_the_stream_without_showing_it(pull, api):
    api.get(contacts(), status=401, json={"code": "invalid_credentials", "message": "You have to be logged in"})
    with pytest.raises(SyncError) as raised:
        pull.run("contacts")
    assert raised.value.errors == {"contacts": f"GET {BASE}/contacts answered 401 Unauthorized"}
    assert API_KEY not in str(raised.value)
    assert (pull.keys(), pull.sleeps) == ([], [])


@pytest.mark.parametrize("settings, message", [
    ({}, "connector 'freshdesk' needs domain, api_key in its configuration to pull from the Freshdesk API"),
    ({"domain": "acme.freshdesk.com"},
     "connector 'freshdesk' needs api_key in its configuration to pull from the Freshdesk API"),
    ({"api_key": API_KEY}, "connector 'freshdesk' needs domain in its configuration to pull from the Freshdesk API"),
])
def test_missing_credentials_are_named_before_any_call(make_app, api, settings, message):
    with pytest.raises(NotSyncable) as raised:
        pulling(make_app, "freshdesk", {"enabled": True, "webhook_username": USERNAME,
                                        "webhook_password": PASSWORD, **settings}).run()
    assert str(raised.value) == message


def test_the_api_base_is_the_helpdesks_unless_overridden(pull):
    connector = pull.hub.connector("freshdesk")[0]
    assert connector.api_base(SETTINGS) == BASE
    sandbox = "http://127.0.0.1:9000/api/v2"
    assert connector.api_base({**SETTINGS, "api_base": sandbox}) == sandbox


def test_the_domain_is_a_host_name_not_a_url(make_app):
    with pytest.raises(ConfigError) as raised:
        pulling(make_app, "freshdesk", {**SETTINGS, "domain": "https://acme.freshdesk.com/"})
    assert raised.value.problems == {
        "connectors.freshdesk.domain": "the helpdesk's host name alone, e.g. acme.freshdesk.com"}


@pytest.mark.parametrize("status, updated_at, terms", [
    (2, "2026-03-02T10:15:42Z", {"status": "Open", "change": None, "opened_status": "Open"}),
    (2, "2026-03-02T11:00:00Z", {"status": "Open", "change": "ticket.updated", "opened_status": None}),
    (3, "2026-03-02T11:00:00Z", {"status": "Pending", "change": "ticket.updated", "opened_status": None}),
    (4, "2026-03-02T11:00:00Z", {"status": "Resolved", "change": "ticket.solved", "opened_status": None}),
    (5, "2026-03-02T10:15:42Z", {"status": "Closed", "change": "ticket.solved", "opened_status": "Closed"}),
    (6, "2026-03-02T11:00:00Z", {"status": None, "change": "ticket.updated", "opened_status": None}),
])
def test_a_pulled_ticket_is_read_in_the_webhook_templates_terms(status, updated_at, terms):
    """Built-in status numbers are named; a custom one (6 and up) has no fixed name."""
    ticket = {"id": 1228307, "status": status, "priority": 4, "created_at": "2026-03-02T10:15:42Z",
              "updated_at": updated_at}
    assert ticket_terms(ticket) == {**terms, "priority": "Urgent",
                                    "key": f"1228307:{updated_at}:{terms['status'] or status}"}


# -- end to end: pulled records in profiles -----------------------------------------------------

LOGIN = {"ticket_id": "1228310", "priority": "high", "subject": "Login fails"}
WARRANTY = {"ticket_id": "1228315", "priority": "medium", "subject": "Warranty claim"}
PEOPLE = [
    ([("email", "jane.doe@example.com"), ("freshdesk_contact_id", "80012345"), ("phone", "+14155550134")],
     {"email": ("jane.doe@example.com", "freshdesk", "2026-03-02T10:15:42+00:00"),
      "phone": ("+14155550134", "freshdesk", "2026-03-01T09:00:00+00:00"),
      "name": ("Jane Doe", "freshdesk", "2026-03-01T09:00:00+00:00")},
     [OPENED], metrics("2026-03-02T10:15:42+00:00", "2026-03-02T10:15:42+00:00", 1)),
    ([("email", "lena.vogel@example.de"), ("freshdesk_contact_id", "80012390")],
     {"email": ("lena.vogel@example.de", "freshdesk", "2026-03-02T14:45:00+00:00"),
      "name": ("Lena Vogel", "freshdesk", "2026-03-02T13:20:00+00:00")},
     [("ticket.opened", "1228315", "2026-03-02T13:00:00+00:00", WARRANTY),
      ("ticket.solved", "1228315:2026-03-02T14:45:00Z:Closed", "2026-03-02T14:45:00+00:00",
       {**WARRANTY, "status": "closed"})],
     metrics("2026-03-02T13:00:00+00:00", "2026-03-02T14:45:00+00:00", 0)),
    ([("email", "omar.haddad@example.com"), ("freshdesk_contact_id", "80012377"), ("phone", "+12125550188")],
     {"email": ("omar.haddad@example.com", "freshdesk", "2026-03-02T12:30:00+00:00"),
      "phone": ("+12125550188", "freshdesk", "2026-03-02T10:59:00+00:00"),
      "name": ("Omar Haddad", "freshdesk", "2026-03-02T10:59:00+00:00")},
     [("ticket.opened", "1228310", "2026-03-02T11:00:00+00:00", LOGIN),
      ("ticket.updated", "1228310:2026-03-02T12:30:00Z:Pending", "2026-03-02T12:30:00+00:00",
       {**LOGIN, "status": "pending"})],
     metrics("2026-03-02T11:00:00+00:00", "2026-03-02T12:30:00+00:00", 1)),
]


@pytest.mark.parametrize("order", [("contacts", "tickets"), ("tickets", "contacts")])
def test_pulled_contacts_and_tickets_become_profiles(hub, api, db_engine, order):
    """Numbers become the webhook template's names; an untouched ticket is only opened."""
    serve_everything(api)
    for stream in order:
        hub.run(stream)
        settle(hub.app)
    assert people(db_engine) == PEOPLE


def webhook(hub, name: str) -> None:
    """POST a Freshdesk webhook fixture with the rule's Basic credentials."""
    assert send(hub.app.test_client(), fixture(name)).status_code == 202


@pytest.mark.parametrize("webhook_first", [True, False])
def test_a_ticket_seen_by_webhook_and_by_pull_is_one_ticket_with_the_latest_status(hub, api, db_engine,
                                                                                    webhook_first):
    """The same versions make the same activities: one opening, one resolution, nothing open."""
    api.get(tickets(), json=listing("pull_tickets_1")[:1], headers=RATE)
    api.get(tickets(since="2026-03-02T10:15:42Z"), json=listing("pull_tickets_3")[1:], headers=RATE)
    for step in ("ticket_created", "status_resolved"):
        if webhook_first:
            webhook(hub, step)
        hub.run("tickets")
        settle(hub.app)
        if not webhook_first:
            webhook(hub, step)
            settle(hub.app)
    assert people(db_engine) == [(
        [("email", "jane.doe@example.com"), ("freshdesk_contact_id", "80012345")],
        {"email": ("jane.doe@example.com", "freshdesk", "2026-03-03T08:01:09+00:00")}, [OPENED, RESOLVED],
        metrics("2026-03-02T10:15:42+00:00", "2026-03-03T08:01:09+00:00", 0))]
