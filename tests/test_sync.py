"""``hub sync``: every paginator, incremental cursors, retries, resuming after a crash, the CLI."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import click
import pytest
import requests
import responses
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from hub import inbox
from hub.connector import Stream
from hub.models import InboxRecord, SyncCursor
from hub.paginators import LinkHeader, Paginator
from hub.sync import Retry, SyncError, register_cli, retry_after, sync
from tests.conftest import hub_config

BASE = "https://pullee.test/api"
TOKEN = "tok-secret-123"
PULLEE = {"enabled": True, "api_base": BASE, "api_token": TOKEN}
PLUGINS = ["tests.plugins.echo", "tests.plugins.pullee"]
UTC = timezone.utc


def body(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def customer(n: int, updated_at: str) -> dict:
    return {"id": n, "email": f"c{n}@example.com", "updated_at": updated_at}


def link(page_info: str) -> dict:
    return {"Link": f'<{BASE}/customers.json?page_info={page_info}&limit=2>; rel="next"'}


@dataclass
class Pull:
    """The pullee connector on the test database, with recorded sleeps and drain signals."""

    hub: object
    engine: object
    sleeps: list = field(default_factory=list)
    signals: list = field(default_factory=list)

    def run(self, stream: str | None = None, full: bool = False) -> dict[str, int]:
        return sync(self.hub, "pullee", stream, full, sleep=self.sleeps.append,
                    retry=Retry(max_retries=3, jitter=lambda: 0.5))

    def rows(self) -> list[tuple]:
        columns = (InboxRecord.connector, InboxRecord.kind, InboxRecord.key, InboxRecord.topic,
                   InboxRecord.body, InboxRecord.occurred_at)
        with self.engine.connect() as connection:
            return [tuple(r) for r in connection.execute(select(*columns).order_by(InboxRecord.id))]

    def keys(self) -> list[str]:
        return [row[2] for row in self.rows()]

    def state(self, stream: str) -> dict | None:
        with self.hub.session() as session:
            row = session.get(SyncCursor, ("pullee", stream))
            return row.state if row else None

    def set_state(self, stream: str, state: dict) -> None:
        with self.hub.session.begin() as session:
            session.merge(SyncCursor(connector="pullee", stream=stream, state=state))


@pytest.fixture
def pull(make_app, db_engine, monkeypatch):
    app = make_app(plugins=PLUGINS, connectors={"pullee": PULLEE})
    running = app.extensions["tributary"]
    harness = Pull(running, db_engine)
    monkeypatch.setattr(running, "signal_drain", lambda: harness.signals.append(1) or True)
    return harness


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def urls(api) -> list[str]:
    return [call.request.url for call in api.calls]


def serve_customers(api, pages: list[list[dict]], more: bool = False):
    """Shopify-style pages: page N (N > 1) is ``?page_info=pN&limit=2``; ``more``: link past the last."""
    for n, records in enumerate(pages, 1):
        url = f"{BASE}/customers.json?limit=2" if n == 1 else f"{BASE}/customers.json?page_info=p{n}&limit=2"
        api.get(url, json={"customers": records}, headers=link(f"p{n + 1}") if more or n < len(pages) else {})


CUSTOMERS = [customer(1, "2024-05-01T10:00:00-04:00"), customer(2, "2024-05-01T12:00:00Z"),
             customer(3, "2024-04-30T08:00:00Z"), customer(4, "2024-05-01T15:30:00+02:00"),
             customer(5, "2024-04-29T00:00:00Z")]


def customer_rows(*records: dict) -> list[tuple]:
    return [("pullee", "pulled", f"pull:customers:{r['id']}:{r['updated_at']}", "customers/update",
             body(r), datetime.fromisoformat(r["updated_at"]).astimezone(UTC)) for r in records]


# -- paginators -----------------------------------------------------------------------

def test_link_header_pages_store_every_record_with_its_version(pull, api):
    serve_customers(api, [CUSTOMERS[0:2], CUSTOMERS[2:4], CUSTOMERS[4:]])
    assert pull.run("customers") == {"customers": 5}
    assert urls(api) == [f"{BASE}/customers.json?limit=2",
                         f"{BASE}/customers.json?page_info=p2&limit=2",
                         f"{BASE}/customers.json?page_info=p3&limit=2"]
    assert [call.request.headers["Authorization"] for call in api.calls] == [f"Bearer {TOKEN}"] * 3
    assert pull.rows() == customer_rows(*CUSTOMERS)
    assert pull.rows()[0][4] == (b'{"email":"c1@example.com","id":1,'
                                 b'"updated_at":"2024-05-01T10:00:00-04:00"}')
    # the latest instant, not the greatest string: 14:00Z (-04:00) beats 12:00Z and 13:30Z (+02:00)
    assert pull.state("customers") == {"cursor": "2024-05-01T10:00:00-04:00"}
    assert (pull.signals, pull.sleeps) == ([1, 1, 1], [])


def test_page_number_stops_at_the_total_pages_header(pull, api):
    orders = [{"id": n, "date_modified_gmt": f"2024-05-0{n}T10:00:00"} for n in (1, 2, 3)]
    api.get(f"{BASE}/orders?per_page=2&page=1", json=orders[:2], headers={"X-WP-TotalPages": "2"})
    api.get(f"{BASE}/orders?per_page=2&page=2", json=orders[2:], headers={"X-WP-TotalPages": "2"})
    assert pull.run("orders") == {"orders": 3}
    assert urls(api) == [f"{BASE}/orders?per_page=2&page=1", f"{BASE}/orders?per_page=2&page=2"]
    assert pull.rows() == [("pullee", "pulled", f"pull:orders:{n}:2024-05-0{n}T10:00:00", "order.updated",
                            body(orders[n - 1]), datetime(2024, 5, n, 10, tzinfo=UTC)) for n in (1, 2, 3)]
    assert pull.state("orders") == {"cursor": "2024-05-03T10:00:00"}


def test_page_number_without_the_header_stops_at_an_empty_page(pull, api):
    orders = [{"id": n, "date_modified_gmt": f"2024-05-0{n}T10:00:00"} for n in (1, 2)]
    api.get(f"{BASE}/orders?per_page=2&page=1", json=orders)
    api.get(f"{BASE}/orders?per_page=2&page=2", json=[])
    assert pull.run("orders") == {"orders": 2}
    assert pull.keys() == ["pull:orders:1:2024-05-01T10:00:00", "pull:orders:2:2024-05-02T10:00:00"]
    assert pull.state("orders") == {"cursor": "2024-05-02T10:00:00"}
    assert pull.signals == [1]


def charge(n: int, created: int) -> dict:
    return {"id": f"ch_{n}", "object": "charge", "created": created, "amount": 100 * n}


def test_cursor_after_follows_has_more(pull, api):
    charges = [charge(1, 1714557600), charge(2, 1714557700), charge(3, 1714557650)]
    api.get(f"{BASE}/v1/charges?limit=2", json={"object": "list", "data": charges[:2], "has_more": True})
    api.get(f"{BASE}/v1/charges?limit=2&starting_after=ch_2",
            json={"object": "list", "data": charges[2:], "has_more": False})
    assert pull.run("charges") == {"charges": 3}
    assert pull.rows() == [("pullee", "pulled", f"pull:charges:{c['id']}:{c['created']}", "charge.updated",
                            body(c), datetime.fromtimestamp(c["created"], UTC)) for c in charges]
    assert pull.state("charges") == {"cursor": 1714557700}


def test_offset_stops_at_total_items(pull, api):
    members = [{"id": f"m{n}", "email_address": f"m{n}@example.com",
                "last_changed": f"2024-05-0{n}T10:00:00+00:00"} for n in range(1, 6)]
    for offset in (0, 2, 4):
        api.get(f"{BASE}/lists/L1/members?offset={offset}&count=2",
                json={"members": members[offset:offset + 2], "total_items": 5})
    assert pull.run("members") == {"members": 5}
    assert urls(api) == [f"{BASE}/lists/L1/members?offset={o}&count=2" for o in (0, 2, 4)]
    assert pull.keys() == [f"pull:members:m{n}:2024-05-0{n}T10:00:00+00:00" for n in range(1, 6)]
    assert [row[3] for row in pull.rows()] == ["profile"] * 5
    assert pull.state("members") == {"cursor": "2024-05-05T10:00:00+00:00"}


#: sha256 of the two profiles' bodies (sorted keys, compact): the version of a record without cursor
P1_HASH = "c329f41701ecedbf3ab3b9da66e4f4770898fabff3faee5644dc7cfd6c43e2b2"
P2_HASH = "16789b0ea039513532c875e7168204ad9b1f2ead63d0bc222838ae36c598427d"


def test_next_url_in_json_api_links_and_content_hash_keys(pull, api):
    profiles = [{"id": "P1", "type": "profile", "attributes": {"email": "p1@example.com"}},
                {"id": "P2", "type": "profile", "attributes": {"email": "p2@example.com"}}]
    api.get(f"{BASE}/profiles", json={"data": profiles[:1],
                                      "links": {"next": f"{BASE}/profiles?page%5Bcursor%5D=bmV4dA"}})
    api.get(f"{BASE}/profiles?page%5Bcursor%5D=bmV4dA", json={"data": profiles[1:], "links": {"next": None}})
    assert pull.run("profiles") == {"profiles": 2}
    assert pull.rows() == [
        ("pullee", "pulled", f"pull:profiles:P1:{P1_HASH}", "profile.updated", body(profiles[0]), None),
        ("pullee", "pulled", f"pull:profiles:P2:{P2_HASH}", "profile.updated", body(profiles[1]), None)]
    assert pull.state("profiles") == {"cursor": None}


def ticket(n: int, updated_at: str) -> dict:
    return {"id": n, "subject": f"Ticket {n}", "updated_at": updated_at}


def test_next_url_until_end_of_stream_then_incremental_in_unix_seconds(pull, api):
    first = [ticket(1, "2024-05-01T10:00:00Z"), ticket(2, "2024-05-01T11:00:00Z")]
    api.get(f"{BASE}/incremental/tickets.json",
            json={"tickets": first[:1], "next_page": f"{BASE}/incremental/tickets.json?start_time=1714557600",
                  "end_of_stream": False})
    api.get(f"{BASE}/incremental/tickets.json?start_time=1714557600",
            json={"tickets": first[1:], "next_page": f"{BASE}/incremental/tickets.json?start_time=1714561200",
                  "end_of_stream": True})
    assert pull.run("tickets") == {"tickets": 2}
    assert pull.state("tickets") == {"cursor": "2024-05-01T11:00:00Z"}
    api.get(f"{BASE}/incremental/tickets.json?start_time=1714561200",
            json={"tickets": [ticket(2, "2024-05-01T11:00:00Z"), ticket(1, "2024-05-02T09:00:00Z")],
                  "next_page": f"{BASE}/incremental/tickets.json?start_time=1714640400", "end_of_stream": True})
    assert pull.run("tickets") == {"tickets": 1}
    assert pull.keys() == ["pull:tickets:1:2024-05-01T10:00:00Z", "pull:tickets:2:2024-05-01T11:00:00Z",
                           "pull:tickets:1:2024-05-02T09:00:00Z"]
    assert [row[3] for row in pull.rows()] == ["ticket.updated"] * 3
    assert pull.state("tickets") == {"cursor": "2024-05-02T09:00:00Z"}


# -- incremental and full ---------------------------------------------------------------

def test_second_sync_asks_only_since_the_high_water_mark(pull, api):
    serve_customers(api, [CUSTOMERS[0:2], CUSTOMERS[2:4]])
    assert pull.run("customers") == {"customers": 4}
    newer = customer(3, "2024-05-03T08:00:00Z")
    since = f"{BASE}/customers.json?limit=2&updated_at_min=2024-05-01T10%3A00%3A00-04%3A00"
    api.get(since, json={"customers": [CUSTOMERS[0], newer]})
    assert pull.run("customers") == {"customers": 1}
    assert urls(api)[2:] == [since]
    assert pull.rows() == customer_rows(*CUSTOMERS[0:4], newer)
    assert pull.state("customers") == {"cursor": "2024-05-03T08:00:00Z"}
    assert pull.signals == [1, 1, 1]


def test_incremental_unix_cursor_param(pull, api):
    api.get(f"{BASE}/v1/charges?limit=2", json={"data": [charge(1, 1714557600)], "has_more": False})
    api.get(f"{BASE}/v1/charges?limit=2&created%5Bgte%5D=1714557600",
            json={"data": [charge(1, 1714557600), charge(2, 1714557900)], "has_more": False})
    assert pull.run("charges") == {"charges": 1}
    assert pull.run("charges") == {"charges": 1}
    assert pull.keys() == ["pull:charges:ch_1:1714557600", "pull:charges:ch_2:1714557900"]
    assert pull.state("charges") == {"cursor": 1714557900}


def test_full_ignores_the_cursor_and_an_interrupted_run(pull, api):
    pull.set_state("customers", {"cursor": "2024-05-01T12:00:00Z", "started_cursor": None,
                                 "next": {"url": f"{BASE}/customers.json?page_info=stale", "params": {}}})
    serve_customers(api, [CUSTOMERS[0:2], CUSTOMERS[2:3]])
    assert pull.run("customers", full=True) == {"customers": 3}
    assert urls(api) == [f"{BASE}/customers.json?limit=2", f"{BASE}/customers.json?page_info=p2&limit=2"]
    assert pull.state("customers") == {"cursor": "2024-05-01T10:00:00-04:00"}
    serve_customers(api, [CUSTOMERS[0:2], CUSTOMERS[2:3]])
    assert pull.run("customers", full=True) == {"customers": 0}
    assert urls(api)[2:] == [f"{BASE}/customers.json?limit=2", f"{BASE}/customers.json?page_info=p2&limit=2"]
    assert pull.rows() == customer_rows(*CUSTOMERS[0:3])


# -- rate limits and retries -----------------------------------------------------------------

def test_429_waits_for_retry_after(pull, api):
    api.get(f"{BASE}/customers.json?limit=2", status=429, headers={"Retry-After": "7"})
    serve_customers(api, [CUSTOMERS[0:1]])
    assert pull.run("customers") == {"customers": 1}
    assert pull.sleeps == [7.0]
    assert len(api.calls) == 2


def test_5xx_and_network_errors_back_off_exponentially_with_jitter(pull, api):
    api.get(f"{BASE}/customers.json?limit=2", status=500)
    api.get(f"{BASE}/customers.json?limit=2", body=requests.ConnectionError("reset"))
    api.get(f"{BASE}/customers.json?limit=2", status=503)
    serve_customers(api, [CUSTOMERS[0:1]])
    assert pull.run("customers") == {"customers": 1}
    assert pull.sleeps == [0.5, 1.0, 2.0]  # jitter 0.5 times 1, 2, 4 seconds
    assert pull.keys() == ["pull:customers:1:2024-05-01T10:00:00-04:00"]


def test_connector_throttle_pauses_before_the_next_call_only(pull, api):
    api.get(f"{BASE}/customers.json?limit=2", json={"customers": CUSTOMERS[0:1]},
            headers={**link("p2"), "X-Pullee-Wait": "2.5"})
    api.get(f"{BASE}/customers.json?page_info=p2&limit=2", json={"customers": CUSTOMERS[1:2]},
            headers={"X-Pullee-Wait": "9"})
    assert pull.run("customers") == {"customers": 2}
    assert pull.sleeps == [2.5]


def test_retry_after_as_an_http_date():
    now = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    assert retry_after("Wed, 01 May 2024 10:00:07 GMT", now) == 7.0
    assert retry_after("Wed, 01 May 2024 09:59:00 GMT", now) == 0.0
    assert [retry_after(v, now) for v in ("12", "2.0", "soon", "inf", "", None)] == [
        12.0, 2.0, None, None, None, None]


def test_401_stops_the_stream_naming_status_and_url_without_secrets(pull, api):
    serve_customers(api, [CUSTOMERS[0:2]], more=True)
    api.get(f"{BASE}/customers.json?page_info=p2&limit=2", status=401, json={"errors": "bad token"})
    with pytest.raises(SyncError) as raised:
        pull.run("customers")
    assert raised.value.errors == {"customers": f"GET {BASE}/customers.json answered 401 Unauthorized"}
    assert raised.value.stored == {"customers": 2}
    assert TOKEN not in str(raised.value) and "page_info" not in str(raised.value)
    assert (len(api.calls), pull.sleeps) == (2, [])
    assert pull.state("customers") == {
        "cursor": "2024-05-01T10:00:00-04:00", "started_cursor": None,
        "next": {"url": f"{BASE}/customers.json?page_info=p2&limit=2", "params": {}}}


# -- crashes -----------------------------------------------------------------------------

def test_connection_lost_on_page_3_then_rerun_resumes_at_page_3(pull, api):
    serve_customers(api, [CUSTOMERS[0:2], CUSTOMERS[2:4]], more=True)
    api.get(f"{BASE}/customers.json?page_info=p3&limit=2", body=requests.ConnectionError("gone"))
    with pytest.raises(SyncError) as raised:
        pull.run("customers")
    assert raised.value.errors == {
        "customers": f"GET {BASE}/customers.json failed after 4 attempts (last: ConnectionError)"}
    assert pull.sleeps == [0.5, 1.0, 2.0]
    assert pull.rows() == customer_rows(*CUSTOMERS[0:4])
    assert pull.state("customers")["next"] == {"url": f"{BASE}/customers.json?page_info=p3&limit=2",
                                               "params": {}}

    api.reset()
    api.get(f"{BASE}/customers.json?page_info=p3&limit=2", json={"customers": CUSTOMERS[4:]})
    assert pull.run("customers") == {"customers": 1}
    assert urls(api) == [f"{BASE}/customers.json?page_info=p3&limit=2"]
    assert pull.rows() == customer_rows(*CUSTOMERS)
    assert pull.state("customers") == {"cursor": "2024-05-01T10:00:00-04:00"}


def test_store_fails_on_page_3_then_an_incremental_run_resumes_with_its_own_cursor(pull, api, monkeypatch):
    api.get(f"{BASE}/v1/charges?limit=2", json={"data": [charge(1, 1714557600)], "has_more": False})
    assert pull.run("charges") == {"charges": 1}
    since = f"{BASE}/v1/charges?limit=2&created%5Bgte%5D=1714557600"
    pages = [[charge(2, 1714557900), charge(3, 1714557700)], [charge(4, 1714557800), charge(5, 1714558000)],
             [charge(6, 1714557650)]]
    api.get(since, json={"data": pages[0], "has_more": True})
    api.get(since + "&starting_after=ch_3", json={"data": pages[1], "has_more": True})
    api.get(since + "&starting_after=ch_5", json={"data": pages[2], "has_more": False})
    real_store, calls = inbox.store, []

    def store(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("database went away")
        return real_store(*args, **kwargs)

    monkeypatch.setattr(inbox, "store", store)
    with pytest.raises(RuntimeError):
        pull.run("charges")
    assert pull.keys() == [f"pull:charges:ch_{n}:{c}" for n, c in
                           [(1, 1714557600), (2, 1714557900), (3, 1714557700), (4, 1714557800),
                            (5, 1714558000)]]
    assert pull.state("charges") == {
        "cursor": 1714558000, "started_cursor": 1714557600,
        "next": {"url": f"{BASE}/v1/charges", "params": {"limit": 2, "created[gte]": "1714557600",
                                                         "starting_after": "ch_5"}}}

    api.reset()
    api.get(since + "&starting_after=ch_5", json={"data": pages[2], "has_more": False})
    assert pull.run("charges") == {"charges": 1}
    assert urls(api) == [since + "&starting_after=ch_5"]
    assert pull.keys()[-1] == "pull:charges:ch_6:1714557650"
    assert len(pull.keys()) == 6
    assert pull.state("charges") == {"cursor": 1714558000}


# -- declarations and the command ---------------------------------------------------------

def test_a_stream_names_a_paginator_of_the_closed_set():
    class Homemade(Paginator):
        pass

    with pytest.raises(TypeError, match="paginator must be one of LinkHeader, PageNumber"):
        Stream("x", "x", "id", Homemade(), "x")
    with pytest.raises(ValueError, match="cursor_format must be"):
        Stream("x", "x", "id", LinkHeader(), "x", cursor_format="ms")


@pytest.fixture
def cli(tmp_path, database_url, db_engine, monkeypatch):
    """A command group with ``sync`` registered, reading a hub.yaml on the test database."""
    @click.group()
    def group():
        """Test group."""

    register_cli(group)
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.delenv("HUB_REDIS_URL", raising=False)

    def invoke(*args: str, pullee: dict = PULLEE):
        path = tmp_path / "hub.yaml"
        path.write_text(yaml.safe_dump(hub_config(database_url, plugins=PLUGINS,
                                                  connectors={"pullee": pullee})))
        monkeypatch.setenv("HUB_CONFIG", str(path))
        return CliRunner().invoke(group, list(args))

    return invoke


def test_cli_prints_records_stored_per_stream(cli, api):
    serve_customers(api, [CUSTOMERS[0:2]])
    result = cli("sync", "pullee", "--stream", "customers")
    assert (result.exit_code, result.output) == (0, "customers: 2 records stored\n")


def test_cli_rejects_unknown_or_disabled_connectors_and_streams(cli):
    unknown = cli("sync", "nope")
    assert (unknown.exit_code, unknown.output) == (2, "hub sync: connector 'nope' is not installed\n")
    disabled = cli("sync", "pullee", pullee={**PULLEE, "enabled": False})
    assert (disabled.exit_code, disabled.output) == (
        2, "hub sync: connector 'pullee' is disabled in the configuration\n")
    stream = cli("sync", "pullee", "--stream", "refunds")
    assert (stream.exit_code, stream.output) == (
        2, "hub sync: connector 'pullee' has no stream 'refunds' "
           "(streams: customers, orders, charges, members, profiles, tickets)\n")
    echo = cli("sync", "echo")
    assert (echo.exit_code, echo.output) == (2, "hub sync: connector 'echo' declares no streams\n")


def test_cli_exits_1_naming_the_failed_stream(cli, api):
    api.get(f"{BASE}/customers.json?limit=2", status=403)
    result = cli("sync", "pullee", "--stream", "customers")
    assert (result.exit_code, result.output) == (
        1, f"customers: 0 records stored\ncustomers: stopped: GET {BASE}/customers.json answered 403 Forbidden\n")


def test_every_stream_runs_and_a_failed_one_does_not_stop_the_others(pull, api):
    api.get(f"{BASE}/customers.json?limit=2", status=401)
    api.get(f"{BASE}/orders?per_page=2&page=1", json=[{"id": 7, "date_modified_gmt": "2024-05-01T10:00:00"}],
            headers={"X-WP-TotalPages": "1"})
    api.get(f"{BASE}/v1/charges?limit=2", json={"data": [], "has_more": False})
    api.get(f"{BASE}/lists/L1/members?offset=0&count=2", json={"members": [], "total_items": 0})
    api.get(f"{BASE}/profiles", json={"data": [], "links": {"next": None}})
    api.get(f"{BASE}/incremental/tickets.json", json={"tickets": [], "next_page": None, "end_of_stream": True})
    with pytest.raises(SyncError) as raised:
        pull.run()
    assert raised.value.errors == {"customers": f"GET {BASE}/customers.json answered 401 Unauthorized"}
    assert raised.value.stored == {"customers": 0, "orders": 1, "charges": 0, "members": 0, "profiles": 0,
                                   "tickets": 0}
    assert pull.keys() == ["pull:orders:7:2024-05-01T10:00:00"]
    assert pull.state("customers") is None and pull.state("tickets") == {"cursor": None}
