"""Draining the inbox: same jobs embedded or on RQ, failures isolated, retries, replay."""
import gc

import pytest
from sqlalchemy import select, text, update

from hub import inbox
from hub.drain import collector_paused, drain
from hub.hookspecs import hookimpl
from hub.models import InboxRecord, InboxState
from tests.conftest import hub_config, post_echo, wait_for
from tests.plugins.echo import effects


def statuses(hub):
    with hub.session() as session:
        rows = session.execute(select(InboxRecord.key, InboxState.status, InboxState.attempts)
                               .join_from(InboxRecord, InboxState).order_by(InboxRecord.id))
        return [tuple(r) for r in rows]


def effect_keys(engine):
    with engine.connect() as connection:
        return sorted(r[0] for r in connection.execute(select(effects.c.key)))


def test_embedded_queue_runs_the_drain_job_in_process(make_app, db_engine):
    app = make_app()
    hub = app.extensions["tributary"]
    assert type(hub.queue).__name__ == "EmbeddedQueue"
    client = app.test_client()
    assert post_echo(client, {"events": [{"id": "e1"}, {"id": "e2"}]}).status_code == 202
    wait_for(lambda: statuses(hub) == [("e1", "processed", 0), ("e2", "processed", 0)])
    assert effect_keys(db_engine) == ["e1", "e2"]


def test_redis_queue_runs_the_same_job_on_a_real_rq_worker(make_app, db_engine, redis_url, workers,
                                                           database_url):
    app = make_app(redis_url=redis_url)
    hub = app.extensions["tributary"]
    assert type(hub.queue).__name__ == "RedisQueue"
    client = app.test_client()
    assert post_echo(client, {"events": [{"id": "e1"}, {"id": "e2"}]}).status_code == 202
    assert len(hub.queue.queue) == 1
    # a second signal while a drain waits adds no job
    assert post_echo(client, {"id": "e3"}).status_code == 202
    assert len(hub.queue.queue) == 1
    group = workers.configure(hub_config(database_url, redis_url))
    result = group.run("worker", "--burst")
    assert result.returncode == 0, result.stderr
    assert statuses(hub) == [("e1", "processed", 0), ("e2", "processed", 0), ("e3", "processed", 0)]
    assert effect_keys(db_engine) == ["e1", "e2", "e3"]
    assert len(hub.queue.queue) == 0


def test_a_failing_row_is_retried_then_failed_without_blocking_its_batch(make_app, db_engine):
    app = make_app(inbox={"max_attempts": 3, "backoff_seconds": 0})
    hub = app.extensions["tributary"]
    hub.queue.signal_drain = lambda: False
    client = app.test_client()
    post_echo(client, {"events": [{"id": "ok1"}, {"id": "bad", "fail": True}, {"id": "ok2"}]})
    with app.app_context():
        # no backoff: the drain retries the bad row at once until its attempts run out
        assert drain(hub) == 3 + 1 + 1
    assert statuses(hub) == [("ok1", "processed", 0), ("bad", "failed", 3), ("ok2", "processed", 0)]
    with hub.session() as session:
        error = session.scalar(select(InboxState.error).join_from(InboxRecord, InboxState)
                               .where(InboxRecord.key == "bad"))
    assert error == "RuntimeError: record bad asked to fail"
    assert effect_keys(db_engine) == ["ok1", "ok2"]


def test_a_batch_runs_with_the_garbage_collector_paused(make_app, db_engine):
    app = make_app()
    hub = app.extensions["tributary"]
    hub.queue.signal_drain = lambda: False
    seen = []

    class Watcher:
        @hookimpl
        def process_batch(self, hub, session, records):
            seen.append((len(records), gc.isenabled()))

    hub.pm.register(Watcher())
    post_echo(app.test_client(), {"events": [{"id": "e1"}, {"id": "e2"}]})
    assert gc.isenabled()
    with app.app_context():
        assert drain(hub) == 2
    assert seen == [(2, False)]
    assert gc.isenabled()
    assert effect_keys(db_engine) == ["e1", "e2"]


def test_the_collector_pause_restores_what_it_found():
    with pytest.raises(ValueError), collector_paused():
        assert not gc.isenabled()
        raise ValueError("the batch failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()


def test_backoff_delays_the_next_attempt(make_app):
    app = make_app(inbox={"max_attempts": 5, "backoff_seconds": 60, "backoff_max_seconds": 100})
    hub = app.extensions["tributary"]
    hub.queue.signal_drain = lambda: False
    post_echo(app.test_client(), {"id": "bad", "fail": True})
    with app.app_context():
        drain(hub)
        assert drain(hub) == 0  # not due for another minute
    with hub.session() as session:
        record = session.execute(select(InboxRecord.received_at, InboxState.next_attempt_at)
                                 .join_from(InboxRecord, InboxState)).one()
        assert round((record.next_attempt_at - record.received_at).total_seconds()) == 60
        assert inbox.has_due(session) is False
        session.execute(update(InboxState).values(attempts=3))
        claimed = session.execute(select(*inbox.CLAIMED).join_from(InboxRecord, InboxState)).one()
        inbox.mark_attempt_failed(session, claimed, "again", 5, 60, 100, now=claimed.received_at)
        stored = session.execute(select(InboxState.attempts, InboxState.status, InboxState.error,
                                        InboxState.next_attempt_at)).one()
        assert stored[:3] == (4, "pending", "again")
        assert (stored.next_attempt_at - claimed.received_at).total_seconds() == 100  # capped


def test_replay_and_inbox_stats_commands(make_app, workers, database_url, db_engine):
    app = make_app(inbox={"max_attempts": 1})
    hub = app.extensions["tributary"]
    hub.queue.signal_drain = lambda: False
    post_echo(app.test_client(), {"events": [{"id": "ok"}, {"id": "bad", "fail": True}]})
    with app.app_context():
        drain(hub)
    group = workers.configure(hub_config(database_url, inbox={"max_attempts": 1}))
    stats = group.run("inbox", "stats")
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.splitlines() == [
        "connector                pending   processed      failed",
        "echo                           0           1           1",
    ]
    with db_engine.begin() as connection:  # the cause is fixed: the row no longer fails
        connection.execute(text("UPDATE inbox SET body = :b WHERE key = 'bad'"), {"b": b'{"id": "bad"}'})
    replayed = group.run("replay", "--connector", "echo", "--since", "2000-01-01")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout.strip() == "re-queued 1 failed row"
    wait_for(lambda: ("bad", "processed", 0) in statuses(hub))  # the command's embedded drain ran it
    assert effect_keys(db_engine) == ["bad", "ok"]
    bad_since = group.run("replay", "--since", "yesterday")
    assert bad_since.returncode == 2
    assert "expected an ISO 8601 date or time" in bad_since.stderr


def test_the_drain_lease_loses_no_signal_and_floods_no_queue(make_app, redis_url):
    app = make_app(redis_url=redis_url)
    hub = app.extensions["tributary"]
    queue = hub.queue
    client = app.test_client()
    post_echo(client, {"id": "a"})
    assert (len(queue.queue), bool(queue.redis.exists("tributary:drain:lease"))) == (1, True)
    post_echo(client, {"id": "b"})  # the lease is held: no second job
    assert len(queue.queue) == 1
    queue.queue.empty()
    with app.app_context():
        assert drain(hub) == 2  # the holder of the lease sees both rows
    assert queue.redis.exists("tributary:drain:lease") == 0
    assert queue.take_lease() is True  # a drain is running...
    post_echo(client, {"id": "c"})  # ...so this signal is skipped, and its row...
    assert len(queue.queue) == 0
    with app.app_context():
        assert drain(hub) == 1  # ...is found by that drain's last look
    post_echo(client, {"id": "d"})  # the lease is free again: a new drain job
    assert len(queue.queue) == 1
    assert statuses(hub) == [("a", "processed", 0), ("b", "processed", 0), ("c", "processed", 0),
                             ("d", "pending", 0)]
