"""``hub sync zendesk``: users and tickets from the cursor-based incremental exports.

``responses`` fakes the Zendesk API in its documented shape (``users``/``tickets``,
``after_url``, ``end_of_stream``); the end-to-end tests then process the pulled records
into profiles and compare them with what the webhooks produce. Also home of the pull
harness the Freshdesk pull tests import.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import pytest
import requests

from hub.config import ConfigError
from hub.models import SyncCursor
from hub.sync import NotSyncable, Retry, SyncError, sync
from tests.conftest import inbox_rows, settle
from tests.connectors.test_zendesk import SECRET, fixture, send
from tests.mappings.test_mailchimp import metrics, people
from tests.mappings.test_zendesk import CREATED, INVOCATIONS, SOLVED
from tests.test_sync import api, urls  # noqa: F401 (api is a fixture)

BASE = "https://acme.zendesk.com/api/v2"
EMAIL = "support-admin@acme.example"
TOKEN = "6wiIBWbGkBMo1mRDMuVwkw1EPsNkeUj95PIz2akv"
SETTINGS = {"enabled": True, "webhook_secret": SECRET, "subdomain": "acme", "email": EMAIL, "api_token": TOKEN}
USERS = f"{BASE}/incremental/users/cursor.json"
TICKETS = f"{BASE}/incremental/tickets/cursor.json"
AUTHORIZATION = "Basic " + base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()


@dataclass
class Puller:
    """One connector's ``hub sync`` on the test database, with recorded sleeps."""

    app: object
    connector: str
    sleeps: list = field(default_factory=list)

    @property
    def hub(self):
        return self.app.extensions["tributary"]

    def run(self, stream: str | None = None, retries: int = 3) -> dict[str, int]:
        """Pull like ``hub sync``; retries back off 0.5 s, 1 s, 2 s (jitter 0.5)."""
        return sync(self.hub, self.connector, stream, sleep=self.sleeps.append,
                    retry=Retry(max_retries=retries, jitter=lambda: 0.5))

    def keys(self) -> list[str]:
        return [row[0] for row in inbox_rows(self.app)]

    def topics(self) -> list[str]:
        return [row[1] for row in inbox_rows(self.app)]

    def state(self, stream: str) -> dict | None:
        with self.hub.session() as session:
            row = session.get(SyncCursor, (self.connector, stream))
            return row.state if row else None


def pulling(make_app, connector: str, settings: dict, process: bool = False) -> Puller:
    """``connector`` alone, configured to pull; with ``process`` the hub processes what it
    stores (as ``hub worker`` would), else the records stay in the inbox."""
    app = make_app(connectors={"echo": {"enabled": False}, connector: settings}, inbox={"max_attempts": 1})
    if not process:
        app.extensions["tributary"].queue.signal_drain = lambda: False
    return Puller(app, connector)


def page(name: str) -> dict:
    """A recorded export page (``tests/fixtures/zendesk/<name>.json``)."""
    return json.loads(fixture(name))


def first(url: str, start_time: int = 0) -> str:
    """The first call of an export: ``start_time`` (unix seconds) and the stream's own filters."""
    return f"{url}?start_time={start_time}" + ("&exclude_deleted=true" if url == TICKETS else "")


def serve(api, url: str, *names: str) -> None:
    """Serve pages: the first at ``url``, each next one at the previous page's ``after_url``."""
    for name in names:
        api.get(url, json=page(name))
        url = page(name)["after_url"]


@pytest.fixture
def pull(make_app):
    return pulling(make_app, "zendesk", SETTINGS)


@pytest.fixture
def hub(make_app):
    return pulling(make_app, "zendesk", SETTINGS, process=True)


# -- the API calls ---------------------------------------------------------------------------

def test_both_exports_follow_after_url_until_end_of_stream(pull, api):
    serve(api, first(USERS), "pull_users_1", "pull_users_2")
    serve(api, first(TICKETS), "pull_tickets_1", "pull_tickets_2")
    assert pull.run() == {"users": 3, "tickets": 3}
    assert urls(api) == [
        f"{USERS}?start_time=0", page("pull_users_1")["after_url"],
        f"{TICKETS}?start_time=0&exclude_deleted=true", page("pull_tickets_1")["after_url"]]
    assert [call.request.headers["Authorization"] for call in api.calls] == [AUTHORIZATION] * 4
    assert pull.keys() == [
        "pull:users:20978392:2024-04-17T17:16:58Z", "pull:users:20978401:2024-04-18T08:00:00Z",
        "pull:users:20978455:2024-04-18T12:00:00Z",
        "pull:tickets:35436:2024-04-17T18:01:32Z", "pull:tickets:35437:2024-04-18T08:05:00Z",
        "pull:tickets:35440:2024-04-18T11:47:00Z"]
    assert pull.topics() == ["api:user"] * 3 + ["api:ticket"] * 3
    assert inbox_rows(pull.app)[0][2] == json.dumps(page("pull_users_1")["users"][0], sort_keys=True,
                                                    separators=(",", ":")).encode()
    assert (pull.state("users"), pull.state("tickets")) == ({"cursor": "2024-04-18T12:00:00Z"},
                                                            {"cursor": "2024-04-18T11:47:00Z"})
    assert pull.sleeps == []


def test_the_next_run_starts_at_the_latest_update_in_unix_seconds(pull, api):
    serve(api, first(TICKETS), "pull_tickets_1", "pull_tickets_2")
    assert pull.run("tickets") == {"tickets": 3}
    serve(api, first(TICKETS, start_time=1713440820), "pull_tickets_3")  # 2024-04-18T11:47:00Z
    assert pull.run("tickets") == {"tickets": 1}  # 35440 comes again, unchanged: stored once
    assert urls(api)[2:] == [f"{TICKETS}?start_time=1713440820&exclude_deleted=true"]
    assert pull.keys()[3:] == ["pull:tickets:35436:2024-04-19T09:02:44Z"]
    assert pull.state("tickets") == {"cursor": "2024-04-19T09:02:44Z"}


def test_429_waits_for_retry_after_and_a_500_is_retried(pull, api):
    api.get(first(USERS), status=429, headers={"Retry-After": "41"}, json={"error": "APIRateLimitExceeded"})
    api.get(first(USERS), status=500)
    serve(api, first(USERS), "pull_users_1", "pull_users_2")
    assert pull.run("users") == {"users": 3}
    assert pull.sleeps == [41.0, 1.0]  # Retry-After, then backoff 0.5 * 2
    assert len(pull.keys()) == 3


def test_a_spent_account_budget_waits_for_its_reset(pull, api):
    api.get(first(USERS), json=page("pull_users_1"), headers={"ratelimit-remaining": "0", "ratelimit-reset": "17"})
    api.get(page("pull_users_1")["after_url"], json=page("pull_users_2"),
            headers={"ratelimit-remaining": "698", "ratelimit-reset": "12"})
    assert pull.run("users") == {"users": 3}
    assert pull.sleeps == [17.0]


def test_a_run_cut_after_page_one_resumes_at_page_two(pull, api):
    after = page("pull_users_1")["after_url"]
    api.get(first(USERS), json=page("pull_users_1"))
    api.get(after, body=requests.ConnectionError("connection reset by peer"))
    with pytest.raises(SyncError) as raised:
        pull.run("users", retries=0)
    assert raised.value.errors == {"users": f"GET {USERS} failed after 1 attempts (last: ConnectionError)"}
    assert raised.value.stored == {"users": 2}
    assert pull.state("users") == {"cursor": "2024-04-18T08:00:00Z", "started_cursor": None,
                                   "next": {"url": after, "params": {}}}
    api.reset()
    api.get(after, json=page("pull_users_2"))
    assert pull.run("users") == {"users": 1}
    assert urls(api) == [after]
    assert pull.keys() == ["pull:users:20978392:2024-04-17T17:16:58Z", "pull:users:20978401:2024-04-18T08:00:00Z",
                           "pull:users:20978455:2024-04-18T12:00:00Z"]
    assert pull.state("users") == {"cursor": "2024-04-18T12:00:00Z"}


def test_a_refused_token_stops_the_stream_without_showing_secrets(pull, api):
    api.get(first(USERS), status=401, json={"error": "Couldn't authenticate you"})
    with pytest.raises(SyncError) as raised:
        pull.run("users")
    assert raised.value.errors == {"users": f"GET {USERS} answered 401 Unauthorized"}
    assert TOKEN not in str(raised.value) and EMAIL not in str(raised.value)
    assert (pull.keys(), pull.sleeps) == ([], [])


@pytest.mark.parametrize("settings, message", [
    ({}, "connector 'zendesk' needs subdomain, email, api_token in its configuration to pull from the Zendesk API"),
    ({"subdomain": "acme", "email": EMAIL}, "connector 'zendesk' needs api_token in its configuration to pull "
                                            "from the Zendesk API"),
    ({"api_base": "https://sandbox.example/api/v2", "api_token": TOKEN},
     "connector 'zendesk' needs email in its configuration to pull from the Zendesk API"),
])
def test_missing_credentials_are_named_before_any_call(make_app, api, settings, message):
    with pytest.raises(NotSyncable) as raised:
        pulling(make_app, "zendesk", {"enabled": True, "webhook_secret": SECRET, **settings}).run()
    assert str(raised.value) == message
    assert TOKEN not in str(raised.value)


def test_the_api_base_is_the_accounts_unless_overridden(pull):
    connector = pull.hub.connector("zendesk")[0]
    assert connector.api_base(SETTINGS) == BASE
    sandbox = "http://127.0.0.1:9000/api/v2"
    assert connector.api_base({**SETTINGS, "api_base": sandbox}) == sandbox


def test_the_subdomain_is_a_name_not_a_url(make_app):
    with pytest.raises(ConfigError) as raised:
        pulling(make_app, "zendesk", {**SETTINGS, "subdomain": "acme.zendesk.com"})
    assert raised.value.problems == {"connectors.zendesk.subdomain": "the subdomain alone (acme for acme.zendesk.com)"}


# -- end to end: pulled records in profiles -----------------------------------------------------

def ticket_key(ticket: int, updated_at: str) -> str:
    return f"pull:tickets:{ticket}:{updated_at}"


SOLVED_AT = "2024-04-18T09:02:44Z"
PRINTER = {"ticket_id": "35436", "priority": "high", "subject": "Printer on fire"}
ADDRESS = {"ticket_id": "35440", "priority": "low", "subject": "Changer d'adresse"}
PEOPLE = [
    ([("email", "bob.lee@example.com"), ("zendesk_user_id", "20978401")],
     {"email": ("bob.lee@example.com", "zendesk", "2024-04-18T08:00:00+00:00"),
      "name": ("Bob Lee", "zendesk", "2024-04-18T08:00:00+00:00")},
     [("ticket.opened", "35437", "2024-04-18T08:05:00+00:00",
       {"ticket_id": "35437", "status": "new", "priority": "normal", "subject": "Invoice copy"})],
     metrics("2024-04-18T08:05:00+00:00", "2024-04-18T08:05:00+00:00", 1)),
    ([("email", "chloe.martin@example.fr"), ("phone", "+33612345678"), ("zendesk_user_id", "20978455")],
     {"email": ("chloe.martin@example.fr", "zendesk", "2024-04-18T12:00:00+00:00"),
      "phone": ("+33612345678", "zendesk", "2024-04-18T12:00:00+00:00"),
      "name": ("Chloé Martin", "zendesk", "2024-04-18T12:00:00+00:00")},
     [("satisfaction.rated", "1500012345", "2024-04-18T11:47:00+00:00",
       {"ticket_id": "35440", "score": "good", "comment": "Rapide et efficace, merci !", "status": "solved"}),
      ("ticket.opened", "35440", "2024-04-18T09:00:00+00:00", ADDRESS),
      ("ticket.solved", ticket_key(35440, "2024-04-18T11:47:00Z"), "2024-04-18T11:47:00+00:00",
       {**ADDRESS, "status": "solved"})],
     metrics("2024-04-18T09:00:00+00:00", "2024-04-18T11:47:00+00:00", 0)),
    ([("email", "jane.doe@example.com"), ("phone", "+14155550134"), ("zendesk_user_id", "20978392")],
     {"email": ("jane.doe@example.com", "zendesk", "2024-04-17T17:16:58+00:00"),
      "phone": ("+14155550134", "zendesk", "2024-04-17T17:16:58+00:00"),
      "name": ("Jane Doe", "zendesk", "2024-04-17T17:16:58+00:00")},
     [("ticket.opened", "35436", "2024-04-17T17:18:10+00:00", PRINTER),
      ("ticket.updated", ticket_key(35436, "2024-04-17T18:01:32Z"), "2024-04-17T18:01:32+00:00",
       {**PRINTER, "status": "open"})],
     metrics("2024-04-17T17:18:10+00:00", "2024-04-17T18:01:32+00:00", 1)),
]


@pytest.mark.parametrize("order", [("users", "tickets"), ("tickets", "users")])
def test_pulled_tickets_join_their_requesters_through_the_user_id(hub, api, db_engine, order):
    """A pulled ticket names only the requester's user id; the users export links it to an e-mail."""
    serve(api, first(USERS), "pull_users_1", "pull_users_2")
    serve(api, first(TICKETS), "pull_tickets_1", "pull_tickets_2")
    for stream in order:
        hub.run(stream)
        settle(hub.app)
    assert people(db_engine) == PEOPLE


def export(*tickets: dict) -> dict:
    """A last export page holding these tickets."""
    return {**page("pull_tickets_2"), "tickets": list(tickets)}


def printer(**changes) -> dict:
    """Ticket 35436 as the tickets export shows it, with some fields changed."""
    return {**page("pull_tickets_1")["tickets"][0], **changes}


def webhook(hub: Puller, name: str) -> None:
    """POST a Zendesk webhook fixture, signed, with its invocation id."""
    assert send(hub.app.test_client(), fixture(name), invocation=INVOCATIONS[name]).status_code == 202


@pytest.mark.parametrize("webhook_first", [True, False])
def test_a_ticket_seen_by_webhook_and_by_pull_is_one_ticket(hub, api, db_engine, webhook_first):
    """The pulled new ticket opens it exactly as the ticket.created event does; the solved
    version closes it, whatever arrives first."""
    new = printer(status="new", updated_at="2024-04-17T17:18:10Z", satisfaction_rating=None)
    api.get(first(TICKETS), json=export(new))
    if webhook_first:
        webhook(hub, "ticket_created")
    hub.run("tickets")
    settle(hub.app)
    if not webhook_first:
        webhook(hub, "ticket_created")
        settle(hub.app)
    opened = [([("zendesk_user_id", "20978392")], {}, [CREATED],
               metrics("2024-04-17T17:18:10+00:00", "2024-04-17T17:18:10+00:00", 1))]
    assert people(db_engine) == opened

    api.get(first(TICKETS, start_time=1713374290), json=export(printer(status="solved", updated_at=SOLVED_AT)))
    hub.run("tickets")
    webhook(hub, "status_changed_solved")
    settle(hub.app)
    pulled_solved = ("ticket.solved", ticket_key(35436, SOLVED_AT), "2024-04-18T09:02:44+00:00",
                     {**PRINTER, "status": "solved"})
    assert people(db_engine) == [([("zendesk_user_id", "20978392")], {}, [CREATED, SOLVED, pulled_solved],
                                  metrics("2024-04-17T17:18:10+00:00", "2024-04-18T09:02:44.120394+00:00", 0))]


def test_a_deleted_ticket_adds_nothing_to_the_timeline(hub, api, db_engine):
    """``exclude_deleted`` keeps them out of the export; one that slips through is not opened."""
    api.get(first(TICKETS), json=export(printer(status="deleted")))
    hub.run("tickets")
    settle(hub.app)
    assert people(db_engine) == [([("zendesk_user_id", "20978392")], {}, [], metrics())]
