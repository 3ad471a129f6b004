"""Change feed retention: what is pruned, what waits for the outbound subscriptions, and the 410."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from hub import feed, jobs
from hub.config import ConfigError
from hub.models import Change, FeedHorizon, OutboundDelivery, OutboundSubscription
from tests.api.conftest import READ_TOKEN, TOKENS, ApiClient

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
SECRET = "whsec_" + base64.b64encode(b"feed-retention-test-secret-32by").decode()
CRM = {"name": "crm", "url": "https://crm.example.com/hooks", "secret": SECRET, "events": ["*"]}


@pytest.fixture
def make_feed(make_app):
    """An app whose feed holds changes 1..10, created 40 days ago down to 31 days ago (3 = 38)."""

    def build(**overrides):
        app = make_app(api_tokens=TOKENS, **overrides)
        hub = app.extensions["tributary"]
        with hub.session.begin() as session:
            session.execute(insert(Change), [
                {"id": n, "type": "profile.updated", "profile_id": f"p-{n}", "data": {"fields": ["traits.email"]},
                 "created_at": NOW - timedelta(days=41 - n)} for n in range(1, 11)])
        return app

    return build


def ids(app) -> list[int]:
    with app.extensions["tributary"].session() as session:
        return list(session.scalars(select(Change.id).order_by(Change.id)))


def test_changes_older_than_the_retention_are_pruned_and_the_horizon_kept(make_feed):
    app = make_feed(changes={"retention_days": 35})  # the cutoff is 35 days ago: changes 1..5 go
    hub = app.extensions["tributary"]
    assert feed.prune(hub, NOW) == 5
    assert ids(app) == [6, 7, 8, 9, 10]
    with hub.session() as session:
        assert feed.horizon(session) == 5
        assert session.get(FeedHorizon, 1).pruned_at == NOW
    assert feed.prune(hub, NOW) == 0
    assert feed.prune(hub, NOW + timedelta(days=2)) == 2
    assert ids(app) == [8, 9, 10]


def test_a_reader_behind_the_horizon_gets_410_and_others_read_on(make_feed):
    app = make_feed(changes={"retention_days": 35})
    feed.prune(app.extensions["tributary"], NOW)
    api = ApiClient(app)
    expired = api.get("/api/v1/changes", after=4)
    assert (expired.status_code, expired.get_json()) == (410, {"error": {
        "code": "cursor_expired",
        "message": "the changes up to 5 were pruned (retention); read again from after=0 and resynchronise"}})
    assert [c["id"] for c in api.get("/api/v1/changes", after=5).get_json()["items"]] == [6, 7, 8, 9, 10]
    assert [c["id"] for c in api.get("/api/v1/changes", token=READ_TOKEN).get_json()["items"]] == [6, 7, 8, 9, 10]
    assert [c["id"] for c in api.get("/api/v1/changes", after=8).get_json()["items"]] == [9, 10]


def test_an_active_subscription_holds_back_what_it_has_not_dispatched_or_delivered(make_feed):
    app = make_feed(changes={"retention_days": 30}, outbound=[CRM, {**CRM, "name": "bi", "enabled": False}])
    hub = app.extensions["tributary"]
    with hub.session.begin() as session:
        session.add_all([OutboundSubscription(name="crm", last_change_id=7),
                         OutboundSubscription(name="bi", last_change_id=0)])  # paused: holds nothing
        session.flush()
        session.add_all([
            OutboundDelivery(subscription="crm", change_id=2, type="profile.updated", profile_id="p-2",
                             status="succeeded"),
            OutboundDelivery(subscription="crm", change_id=4, type="profile.updated", profile_id="p-4",
                             status="pending"),
            OutboundDelivery(subscription="bi", change_id=1, type="profile.updated", profile_id="p-1",
                             status="pending")])
    assert feed.prune(hub, NOW) == 3  # crm still waits on change 4
    assert ids(app) == [4, 5, 6, 7, 8, 9, 10]
    with hub.session.begin() as session:
        assert list(session.scalars(select(OutboundDelivery.change_id))) == [4]
        session.execute(OutboundDelivery.__table__.update().values(status="failed"))
    assert feed.prune(hub, NOW) == 4  # then crm's dispatch cursor (7) bounds it
    assert ids(app) == [8, 9, 10]
    with hub.session() as session:
        assert list(session.scalars(select(OutboundDelivery.change_id))) == []


def test_no_retention_keeps_everything_and_a_bad_one_is_refused(make_feed, make_app):
    app = make_feed(changes={"retention_days": None})
    assert feed.prune(app.extensions["tributary"], NOW + timedelta(days=400)) == 0
    assert ids(app) == list(range(1, 11))
    with pytest.raises(ConfigError) as refused:
        make_app(changes={"retention_days": 0})
    assert refused.value.problems == {"changes.retention_days": "Must be greater than or equal to 1."}


def test_the_sweeper_prunes_at_most_once_an_hour(make_feed, monkeypatch):
    app = make_feed(changes={"retention_days": 35})
    monkeypatch.setattr(feed.PRUNING, "last", float("-inf"))
    calls = []
    monkeypatch.setattr(feed, "prune", lambda hub, now=None: calls.append(hub) or 0)
    with app.app_context():
        jobs.sweep()
        jobs.sweep()
    assert calls == [app.extensions["tributary"]]
