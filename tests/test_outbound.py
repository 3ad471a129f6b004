"""Outbound webhooks: the change feed POSTed, signed, to a real local receiver; retries, order, replay.

The changes come from website events through the real pipeline (the echo test connector has
no mapping, so it makes no profiles and no changes).
"""
from __future__ import annotations

import base64
import json
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from unittest import mock

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from standardwebhooks.webhooks import Webhook

from hub import jobs, outbound
from hub.cli import main
from hub.drain import drain
from hub.models import Change, OutboundDelivery, OutboundSubscription, utcnow
from tests.conftest import hub_config, wait_for
from tests.test_config import load, problems_of
from tests.test_website import SECRET as WEBSITE_SECRET, send

SECRET = "whsec_" + base64.b64encode(b"outbound-test-secret-32-bytes-ok").decode()
WEBSITE = {"echo": {"enabled": False}, "website": {"enabled": True, "webhook_secret": WEBSITE_SECRET}}


# -- a real receiver and a clock ------------------------------------------------------

@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def document(self) -> dict:
        return json.loads(self.body)


Reply = tuple  # (status, headers, seconds to wait before answering)


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread: records each request, answers with ``reply(request)``."""

    def __init__(self):
        self.received: list[Received] = []
        self.reply: Callable[[Received], Reply] = lambda request: (200, {}, 0)
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                request = Received({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                receiver.received.append(request)
                status, headers, delay = receiver.reply(request)
                if delay:
                    receiver.release.wait(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"no")
                except OSError:  # the sender gave up or died
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tributary"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies`` in turn, then 200."""
        pending = list(replies)
        self.reply = lambda request: pending.pop(0) if pending else (200, {}, 0)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Clock:
    """The time the sender sees: the real time when made, then moved by hand."""

    def __init__(self):
        self.now = self.start = utcnow().replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def subscription(receiver: Receiver, name: str = "crm", **settings) -> dict:
    return {"name": name, "url": receiver.url, "secret": SECRET, **settings}


@pytest.fixture
def start(make_app):
    """An app with the website source and these subscriptions; the test runs every job itself."""

    def factory(*subs: dict):
        app = make_app(connectors=WEBSITE, outbound=list(subs))
        app.extensions["tributary"].queue.signal = lambda job, lease: False
        return app

    return factory


def post_events(app, events: list[dict], batch: str) -> None:
    """Website events, signed and posted, then processed by the real pipeline (changes in the feed)."""
    assert send(app.test_client(), {"events": events}, msg_id=batch).status_code == 202
    with app.app_context():
        drain(app.extensions["tributary"])


def identify(app, *emails: str, batch: str = "m1") -> None:
    """Website identify events: one person each, with a first name."""
    post_events(app, [{"id": f"{batch}-{i}", "type": "identify", "email": email, "timestamp": "2026-11-23T11:00:00Z",
                       "traits": {"first_name": email.split("@")[0].title()}} for i, email in enumerate(emails)], batch)


def feed(app) -> list[Change]:
    with app.extensions["tributary"].session() as session:
        return list(session.scalars(select(Change).order_by(Change.id)))


def deliveries(app) -> list[tuple]:
    with app.extensions["tributary"].session() as session:
        rows = session.scalars(select(OutboundDelivery).order_by(OutboundDelivery.id))
        return [(d.subscription, d.change_id, d.status, d.attempts, d.last_status) for d in rows]


def delivery(app, change_id: int, name: str = "crm") -> OutboundDelivery:
    with app.extensions["tributary"].session() as session:
        return session.scalars(select(OutboundDelivery).where(OutboundDelivery.change_id == change_id,
                                                              OutboundDelivery.subscription == name)).one()


def verified(request: Received) -> dict:
    """The body as the official library verifies it, at the moment its timestamp says it was sent."""
    sent = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), timezone.utc)
    with mock.patch("standardwebhooks.webhooks.datetime", wraps=datetime) as clock:
        clock.now.return_value = sent
        return Webhook(SECRET).verify(request.body, request.headers)


def expected_body(change: Change) -> bytes:
    stamp = change.created_at.isoformat().replace("+00:00", "Z")
    data = json.dumps(change.data, separators=(",", ":"))[1:-1]
    return (f'{{"type":"{change.type}","timestamp":"{stamp}","data":{{"profile_id":"{change.profile_id}"'
            f'{"," if data else ""}{data}}}}}').encode()


def counter(name: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("tributary_outbound_deliveries_total",
                                     {"subscription": name, "outcome": outcome}) or 0.0


def write_config(tmp_path, database_url: str, *subs: dict) -> str:
    path = tmp_path / "hub.yaml"
    path.write_text(json.dumps(hub_config(database_url, connectors=WEBSITE, outbound=list(subs))))
    return str(path)


def cli(config: str, *args: str):
    return CliRunner().invoke(main, ["--config", config, *args], catch_exceptions=False)


# -- configuration ------------------------------------------------------------------

def test_subscriptions_are_validated_and_named_in_errors():
    good = {"name": "crm", "url": "https://crm.example.com/hooks", "secret": SECRET}
    config = load({"outbound": [good, {**good, "name": "bi", "events": ["profile.merged"], "enabled": False}]})
    assert config.outbound == [
        {**good, "events": ["*"], "enabled": True, "timeout_seconds": 10.0},
        {**good, "name": "bi", "events": ["profile.merged"], "enabled": False, "timeout_seconds": 10.0}]
    short = "whsec_" + base64.b64encode(b"too short").decode()
    problems = problems_of({"outbound": [
        {**good, "url": "not a url", "secret": "not-whsec"},
        {**good, "name": "two", "secret": short, "events": ["profile.updated", "profile updated"]},
        {**good, "name": "three", "secret": "whsec_!!!", "url": "ftp://crm.example.com/"},
        {**good, "name": "crm", "secret": SECRET, "colour": "red"},
        {"name": "bad name!"},
    ]})
    assert problems == {
        "outbound[0].url": "Not a valid URL.",
        "outbound[0].secret": "must start with whsec_ followed by base64",
        "outbound[1].secret": "secret too short: at least 16 bytes after base64 decoding",
        "outbound[1].events[1]": "must be a change type such as profile.updated, or *",
        "outbound[2].secret": "not a whsec_ secret: the part after whsec_ must be base64",
        "outbound[2].url": "Not a valid URL.",
        "outbound[3].colour": "Unknown field.",
        "outbound[4].name": "1 to 64 letters, digits, '_', '-' or '.'",
        "outbound[4].url": "Missing data for required field.",
        "outbound[4].secret": "Missing data for required field.",
    }
    assert problems_of({"outbound": [good, {**good, "url": "https://other.example.com/"}]}) == {
        "outbound[1].name": "crm is already the name of outbound[0]"}


def test_a_bad_subscription_stops_the_start_naming_the_key_not_the_secret(tmp_path):
    leaked = "whsec_" + base64.b64encode(b"short-secret").decode()
    path = tmp_path / "hub.yaml"
    path.write_text(json.dumps({"outbound": [{"name": "crm", "url": "https://crm.example.com/", "secret": leaked}]}))
    result = CliRunner().invoke(main, ["--config", str(path), "deliveries"])
    assert result.exit_code == 2
    assert f"invalid {path}:" in result.stderr
    assert "  outbound[0].secret: secret too short: at least 16 bytes after base64 decoding" in result.stderr
    assert leaked[6:] not in result.output


# -- sending ------------------------------------------------------------------------

def test_each_change_is_posted_signed_with_the_exact_body(start, receiver):
    app = start(subscription(receiver))
    identify(app, "ana@example.com")
    changes = feed(app)
    assert [(c.type, c.data) for c in changes] == [
        ("profile.created", {}), ("profile.updated", {"fields": ["identities", "traits.email", "traits.first_name"]})]
    succeeded = counter("crm", "succeeded")
    assert outbound.send_due(app.extensions["tributary"]) == (2, False)
    assert [r.body for r in receiver.received] == [expected_body(c) for c in changes]
    for request, change in zip(receiver.received, changes):
        assert Webhook(SECRET).verify(request.body, request.headers) == {  # at the real time: just sent
            "type": change.type, "timestamp": change.created_at.isoformat().replace("+00:00", "Z"),
            "data": {"profile_id": change.profile_id, **change.data}}
        assert request.id == f"msg_crm_{change.id}"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "Tributary/0.1.0"
    assert deliveries(app) == [("crm", changes[0].id, "succeeded", 1, 200), ("crm", changes[1].id, "succeeded", 1, 200)]
    assert delivery(app, changes[0].id).delivered_at is not None
    assert counter("crm", "succeeded") == succeeded + 2
    assert outbound.send_due(app.extensions["tributary"]) == (0, False)
    assert len(receiver.received) == 2


def test_failures_and_timeouts_are_retried_on_schedule_with_the_same_webhook_id(start, receiver):
    app = start(subscription(receiver, timeout_seconds=0.3))
    hub, clock = app.extensions["tributary"], Clock()
    identify(app, "ana@example.com")
    created, updated = feed(app)
    receiver.script((500, {}, 0), (200, {}, 1.0))  # an error, then an answer too late
    assert outbound.send_due(hub, clock) == (1, False)  # the profile's next change waits behind it
    first = delivery(app, created.id)
    assert (first.status, first.attempts, first.last_status, first.last_error) == ("pending", 1, 500, "HTTP 500: no")
    assert first.next_attempt_at == clock.start + timedelta(seconds=5)
    clock.advance(4.9)
    assert outbound.send_due(hub, clock) == (0, False)  # not due yet
    clock.advance(0.1)
    assert outbound.send_due(hub, clock) == (1, False)
    second = delivery(app, created.id)
    assert (second.attempts, second.last_status, second.last_error) == (2, None, "ReadTimeout: no answer within 0.3 s")
    assert second.next_attempt_at == clock.now + timedelta(minutes=5)
    clock.advance(300)
    assert outbound.send_due(hub, clock) == (2, False)
    assert [r.id for r in receiver.received] == [f"msg_crm_{created.id}"] * 3 + [f"msg_crm_{updated.id}"]
    assert {r.body for r in receiver.received[:3]} == {expected_body(created)}
    assert [verified(r)["type"] for r in receiver.received] == ["profile.created"] * 3 + ["profile.updated"]
    assert deliveries(app) == [("crm", created.id, "succeeded", 3, 200), ("crm", updated.id, "succeeded", 1, 200)]


def test_retry_after_is_honoured_when_longer_than_the_schedule(start, receiver):
    app = start(subscription(receiver))
    hub, clock = app.extensions["tributary"], Clock()
    identify(app, "ana@example.com")
    created = feed(app)[0]
    later = format_datetime(clock.start + timedelta(seconds=5 + 3600), usegmt=True)
    receiver.script((429, {"Retry-After": "120"}, 0), (503, {"Retry-After": later}, 0),
                    (503, {"Retry-After": "1"}, 0))
    outbound.send_due(hub, clock)  # 120 s asked: longer than the schedule's 5 s
    assert delivery(app, created.id).next_attempt_at == clock.start + timedelta(seconds=120)
    clock.advance(120)
    outbound.send_due(hub, clock)  # an HTTP date, an hour after the scheduled 5 s
    assert delivery(app, created.id).next_attempt_at == clock.start + timedelta(seconds=5 + 3600)
    clock.now = clock.start + timedelta(seconds=5 + 3600)
    outbound.send_due(hub, clock)  # shorter than the schedule's 30 min: the schedule wins
    assert delivery(app, created.id).next_attempt_at == clock.now + timedelta(minutes=30)
    assert [r.id for r in receiver.received] == [f"msg_crm_{created.id}"] * 3


def test_eight_failed_attempts_then_failed_then_replayed(start, receiver, database_url, tmp_path):
    app = start(subscription(receiver))
    hub, clock = app.extensions["tributary"], Clock()
    identify(app, "ana@example.com")
    created, updated = feed(app)
    receiver.reply = lambda request: (500, {}, 0)
    waits = []
    for _ in range(7):
        before = clock.now
        assert outbound.send_due(hub, clock) == (1, False)  # the profile's updated change waits behind
        waits.append((delivery(app, created.id).next_attempt_at - before).total_seconds())
        clock.advance(waits[-1])
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert sum(waits) / 3600 == pytest.approx(27.6, abs=0.1)
    assert outbound.send_due(hub, clock) == (2, False)  # the 8th attempt fails for good: the next change goes
    assert [r.id for r in receiver.received] == [f"msg_crm_{created.id}"] * 8 + [f"msg_crm_{updated.id}"]
    assert {r.body for r in receiver.received[:8]} == {expected_body(created)}
    assert all(verified(r)["type"] == "profile.created" for r in receiver.received[:8])
    assert deliveries(app) == [("crm", created.id, "failed", 8, 500), ("crm", updated.id, "pending", 1, 500)]
    config = write_config(tmp_path, database_url, subscription(receiver))
    listed = cli(config, "deliveries", "--status", "failed")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "subscription", "change", "type", "profile", "status", "attempts",
                                "last"]
    assert lines[1].split()[2:] == ["crm", str(created.id), "profile.created", created.profile_id, "failed", "8",
                                    "500"]
    assert len(lines) == 2
    assert SECRET[6:] not in listed.output
    receiver.reply = lambda request: (200, {}, 0)
    replayed = cli(config, "deliveries", "replay", "--subscription", "crm", "--since", "2000-01-01")
    assert replayed.stdout == "re-queued 1 failed delivery\n"  # and the command's embedded job sent it
    assert receiver.received[9].id == f"msg_crm_{created.id}"
    assert receiver.received[9].body == expected_body(created)
    assert verified(receiver.received[9])["type"] == "profile.created"
    assert deliveries(app) == [("crm", created.id, "succeeded", 1, 200), ("crm", updated.id, "pending", 1, 500)]


def test_410_gone_disables_the_subscription_until_enabled_again(start, receiver, database_url, tmp_path):
    subs = [subscription(receiver), subscription(receiver, name="bi", events=["profile.created"])]
    app = start(*subs)
    hub, clock = app.extensions["tributary"], Clock()
    identify(app, "ana@example.com")
    created, updated = feed(app)
    receiver.reply = lambda request: (410, {}, 0) if request.id.startswith("msg_crm_") else (200, {}, 0)
    assert outbound.send_due(hub, clock) == (2, False)  # crm: gone; bi: delivered
    assert deliveries(app) == [("bi", created.id, "succeeded", 1, 200), ("crm", created.id, "failed", 1, 410),
                               ("crm", updated.id, "pending", 0, None)]
    reason = f"the receiver answered 410 Gone to change {created.id}"
    with hub.session() as session:
        state = session.get(OutboundSubscription, "crm")
        assert (state.disabled_at, state.disabled_reason) == (clock.start, reason)
    identify(app, "bo@example.com", batch="m2")
    bo_created, bo_updated = feed(app)[2:]
    clock.advance(86400)
    assert outbound.send_due(hub, clock) == (1, False)  # only bi's new profile.created; nothing more to crm
    assert [r.id for r in receiver.received] == [f"msg_bi_{created.id}", f"msg_crm_{created.id}",
                                                 f"msg_bi_{bo_created.id}"]
    with hub.session() as session:
        assert outbound.has_work(hub, session, clock()) is False
        assert session.get(OutboundSubscription, "crm").last_change_id == updated.id
    config = write_config(tmp_path, database_url, *subs)
    listed = cli(config, "deliveries", "--subscription", "crm")
    assert [line.split()[2:] for line in listed.stdout.splitlines()[1:3]] == [
        ["crm", str(created.id), "profile.created", created.profile_id, "failed", "1", "410"],
        ["crm", str(updated.id), "profile.updated", updated.profile_id, "pending", "0", "-"]]
    assert listed.stdout.splitlines()[3] == (
        f"crm: disabled since {clock.start:%Y-%m-%d %H:%M:%S} ({reason}); "
        "`hub deliveries replay --subscription crm --enable` enables it again")
    receiver.reply = lambda request: (200, {}, 0)
    waiting = cli(config, "deliveries", "replay", "--subscription", "crm")
    assert (waiting.stdout, waiting.stderr) == (
        "re-queued 1 failed delivery\n", "crm is disabled (410 Gone): its deliveries wait until `--enable`\n")
    assert len(receiver.received) == 3
    enabled = cli(config, "deliveries", "replay", "--subscription", "crm", "--enable")
    assert enabled.stdout == "enabled crm again\nre-queued 0 failed deliveries\n"
    # crm catches up from where it stopped, each profile in order
    crm = [r.id for r in receiver.received[3:]]
    assert sorted(crm) == sorted(f"msg_crm_{c.id}" for c in (created, updated, bo_created, bo_updated))
    assert crm.index(f"msg_crm_{created.id}") < crm.index(f"msg_crm_{updated.id}")
    assert crm.index(f"msg_crm_{bo_created.id}") < crm.index(f"msg_crm_{bo_updated.id}")
    assert {d[2] for d in deliveries(app)} == {"succeeded"}


def test_a_failing_profile_holds_up_only_its_own_later_changes(start, receiver):
    app = start(subscription(receiver))
    hub, clock = app.extensions["tributary"], Clock()
    identify(app, "ana@example.com", "bo@example.com")
    ana = feed(app)[0].profile_id
    receiver.reply = lambda request: (500, {}, 0) if request.document["data"]["profile_id"] == ana else (200, {}, 0)
    outbound.send_due(hub, clock)
    sent = [(r.document["type"], r.document["data"]["profile_id"]) for r in receiver.received]
    bo = sent[1][1]
    assert sent == [("profile.created", ana), ("profile.created", bo), ("profile.updated", bo)]
    form = {"id": "f1", "type": "form.submitted", "email": "bo@example.com", "timestamp": "2026-11-23T11:30:00Z",
            "properties": {"form_id": "newsletter"}}
    post_events(app, [form], "m2")  # a later change of Bo's, while Ana's first one still fails
    clock.advance(5)
    outbound.send_due(hub, clock)
    assert [(r.document["type"], r.document["data"]) for r in receiver.received[3:]] == [
        ("profile.created", {"profile_id": ana}),
        ("profile.updated", {"profile_id": bo, "fields": ["metrics", "timeline", "traits.email"]})]
    receiver.reply = lambda request: (200, {}, 0)
    clock.advance(300)
    outbound.send_due(hub, clock)
    assert [(r.document["type"], r.document["data"]["profile_id"]) for r in receiver.received[5:]] == [
        ("profile.created", ana), ("profile.updated", ana)]
    assert {d[2] for d in deliveries(app)} == {"succeeded"}


def test_events_select_changes_and_a_later_subscription_starts_after_the_older_changes(start, receiver):
    app = start(subscription(receiver, events=["profile.created"]))
    identify(app, "ana@example.com")  # made after the hub started with crm, before its first dispatch
    outbound.send_due(app.extensions["tributary"])
    assert [r.document["type"] for r in receiver.received] == ["profile.created"]
    later = start(subscription(receiver, events=["profile.created"]), subscription(receiver, name="all"))
    hub = later.extensions["tributary"]
    outbound.send_due(hub)  # "all" starts after the changes made before this hub started with it
    assert len(receiver.received) == 1
    last = feed(later)[-1].id
    with hub.session() as session:
        assert session.get(OutboundSubscription, "all").last_change_id == last
    identify(later, "bo@example.com", batch="m2")
    outbound.send_due(hub)
    bo_created, bo_updated = feed(later)[2:]
    assert sorted(r.id for r in receiver.received[1:]) == [
        f"msg_all_{bo_created.id}", f"msg_all_{bo_updated.id}", f"msg_crm_{bo_created.id}"]


def test_concurrent_senders_send_each_delivery_once_and_in_order(start, receiver):
    app = start(subscription(receiver))
    hub = app.extensions["tributary"]
    identify(app, *[f"p{i}@example.com" for i in range(12)])
    receiver.reply = lambda request: (200, {}, 0.02)
    outbound.dispatch(hub)
    with app.app_context():
        threads = [threading.Thread(target=outbound.send_due, args=(hub,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    changes = feed(app)
    assert sorted(r.id for r in receiver.received) == sorted(f"msg_crm_{c.id}" for c in changes)
    for profile in {c.profile_id for c in changes}:
        assert [r.document["type"] for r in receiver.received if r.document["data"]["profile_id"] == profile] == [
            "profile.created", "profile.updated"]


def test_an_answer_after_the_lease_ran_out_is_not_stored(start, receiver):
    app = start(subscription(receiver, timeout_seconds=1))
    hub, clock = app.extensions["tributary"], Clock()
    identify(app, "ana@example.com")
    outbound.dispatch(hub, clock)
    subs = outbound.subscriptions(hub)
    with hub.session.begin() as session:
        first = outbound.claim(session, subs, clock())
    assert first.next_attempt_at == clock.start + timedelta(seconds=8)  # 3 x 1 s + 5 s
    clock.advance(8)
    with hub.session.begin() as session:
        second = outbound.claim(session, subs, clock())
    assert (second.id, second.attempts) == (first.id, 2)
    with hub.session.begin() as session:
        assert outbound.record(session, first.id, 1, outbound.Answer(200), clock()) == "stale"
        assert outbound.record(session, first.id, 2, outbound.Answer(500, "HTTP 500"), clock()) == "retry"
    assert deliveries(app)[0][2:] == ("pending", 2, 500)


# -- triggers: drain, sweeper, workers ----------------------------------------------

def test_the_embedded_hub_sends_changes_after_the_drain(make_app, receiver):
    app = make_app(connectors=WEBSITE, outbound=[subscription(receiver)])
    assert send(app.test_client(), {"events": [{"id": "e1", "type": "identify", "email": "ana@example.com"}]},
                msg_id="m1").status_code == 202
    wait_for(lambda: len(receiver.received) == 2)
    assert [verified(r)["type"] for r in receiver.received] == ["profile.created", "profile.updated"]
    wait_for(lambda: [d[2] for d in deliveries(app)] == ["succeeded", "succeeded"])


def test_the_sweeper_signals_when_a_retry_comes_due(start, receiver):
    app = start(subscription(receiver))
    hub = app.extensions["tributary"]
    identify(app, "ana@example.com")
    signals = []
    hub.queue.signal = lambda job, lease: signals.append(job) or True
    with app.app_context():
        assert jobs.sweep() is True  # changes not dispatched yet
    assert signals == ["hub.jobs.deliver"]
    receiver.reply = lambda request: (500, {}, 0)
    outbound.send_due(hub)
    with app.app_context():
        assert jobs.sweep() is False  # the retry is 5 s away
        with hub.session.begin() as session:
            session.execute(update(OutboundDelivery).values(next_attempt_at=datetime.now(timezone.utc)))
        assert jobs.sweep() is True
    assert signals == ["hub.jobs.deliver"] * 2


@pytest.mark.slow
def test_a_worker_killed_mid_send_loses_no_delivery(make_app, receiver, redis_url, workers, database_url):
    sub = subscription(receiver, timeout_seconds=5)
    app = make_app(connectors=WEBSITE, outbound=[sub], redis_url=redis_url)
    receiver.script((200, {}, 60))  # the first request is held open until the worker is dead
    group = workers.configure(hub_config(database_url, redis_url, connectors=WEBSITE, outbound=[sub]))
    victim = group.start()
    assert send(app.test_client(), {"events": [{"id": "e1", "type": "identify", "email": "ana@example.com"}]},
                msg_id="m1").status_code == 202
    wait_for(lambda: len(receiver.received) == 1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    created, updated = feed(app)
    assert deliveries(app) == [("crm", created.id, "pending", 1, None), ("crm", updated.id, "pending", 0, None)]
    group.start()
    wait_for(lambda: [d[2] for d in deliveries(app)] == ["succeeded", "succeeded"], timeout=90)
    assert [r.id for r in receiver.received] == [f"msg_crm_{created.id}"] * 2 + [f"msg_crm_{updated.id}"]
    assert [verified(r)["type"] for r in receiver.received] == ["profile.created"] * 2 + ["profile.updated"]
    assert deliveries(app) == [("crm", created.id, "succeeded", 2, 200), ("crm", updated.id, "succeeded", 1, 200)]
