"""Group commit: concurrent webhook requests share one INSERT and one commit, each gets its own answer."""
import threading
import time

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from hub.connector import Delivery
from hub.db import make_engine
from hub.group_commit import InboxWriter
from hub.models import InboxRecord


def deliveries(*keys):
    return [Delivery(key=key, body=f'{{"id": "{key}"}}'.encode(), topic="thing.created") for key in keys]


class GatedInserts:
    """Holds the first inbox INSERT until ``release()``; counts the INSERT statements run."""

    def __init__(self, engine):
        self.inserts = 0
        self.first_started = threading.Event()
        self._gate = threading.Event()
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, _conn, _cursor, statement, *_):
        if not statement.startswith("INSERT INTO inbox ("):  # the records, not their states
            return
        self.inserts += 1
        if self.inserts == 1:
            self.first_started.set()
            assert self._gate.wait(10)

    def release(self):
        self._gate.set()


def keys_of(engine, ids):
    with engine.connect() as connection:
        rows = connection.execute(select(InboxRecord.id, InboxRecord.key).where(InboxRecord.id.in_(ids)))
        return {row_id: key for row_id, key in rows}


def start(target, *args):
    outcome = {}

    def run():
        try:
            outcome["ids"] = target(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the asserting thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def wait_for_waiting(writer, count):
    deadline = time.monotonic() + 10
    while len(writer._waiting) < count:
        assert time.monotonic() < deadline, "submissions did not queue up"
        time.sleep(0.005)


def held_then_batched(writer, gate, first, *followers):
    """Store ``first`` with its INSERT held, queue each of ``followers`` behind it (in order), let
    the writes go; return the outcome of ``first`` and those of the followers."""
    leader = start(writer.store, "echo", first)
    assert gate.first_started.wait(10)
    queued = []
    for count, submission in enumerate(followers, start=1):
        queued.append(start(writer.store, "echo", submission))
        wait_for_waiting(writer, count)
    gate.release()
    for thread, _ in (leader, *queued):
        thread.join(10)
    return leader[1], [outcome for _, outcome in queued]


def test_requests_arriving_during_a_commit_share_the_next_one(database_url, db_engine):
    engine = make_engine(database_url)
    gate = GatedInserts(engine)
    signals = []
    writer = InboxWriter(engine, on_stored=lambda: signals.append(1))
    first, followers = held_then_batched(writer, gate, deliveries("a1"),
                                         *(deliveries(f"b{i}", f"c{i}") for i in range(5)))
    assert gate.inserts == 2  # the lone first request, then the five that waited, together
    assert len(signals) == 2
    assert keys_of(db_engine, first["ids"]) == {first["ids"][0]: "a1"}
    for i, outcome in enumerate(followers):
        assert sorted(keys_of(db_engine, outcome["ids"]).values()) == [f"b{i}", f"c{i}"]
    with db_engine.connect() as connection:
        assert len(connection.execute(select(InboxRecord.id)).all()) == 11
    engine.dispose()


def test_a_key_twice_in_one_batch_is_new_for_the_first_request_only(database_url, db_engine):
    engine = make_engine(database_url)
    writer = InboxWriter(engine)
    _, (one, two) = held_then_batched(writer, GatedInserts(engine), deliveries("x0"),
                                      deliveries("same", "only-one"), deliveries("same"))
    assert sorted(keys_of(db_engine, one["ids"]).values()) == ["only-one", "same"]
    assert two == {"ids": []}  # answered as a duplicate: the row is the first request's
    assert writer.store("echo", deliveries("same", "only-one")) == []  # and a redelivery later too
    engine.dispose()


def test_a_lone_request_is_written_at_once_and_signals_only_for_new_rows(database_url, db_engine):
    engine = make_engine(database_url)
    signals = []
    writer = InboxWriter(engine, on_stored=lambda: signals.append(1))
    ids = writer.store("echo", deliveries("k1", "k2"))
    assert sorted(keys_of(db_engine, ids).values()) == ["k1", "k2"]
    assert signals == [1]
    assert writer.store("echo", deliveries("k1", "k2")) == []
    assert signals == [1]
    engine.dispose()


def test_a_submission_the_database_rejects_fails_alone(database_url, db_engine):
    engine = make_engine(database_url)
    writer = InboxWriter(engine)
    unstorable = [Delivery(key="bad", body=b"{}", headers={"x-bad": object()})]  # not JSON
    _, (good, bad) = held_then_batched(writer, GatedInserts(engine), deliveries("lead"),
                                       deliveries("good"), unstorable)
    assert list(keys_of(db_engine, good["ids"]).values()) == ["good"]
    assert "ids" not in bad and isinstance(bad["error"], Exception)
    with db_engine.connect() as connection:
        assert sorted(connection.scalars(select(InboxRecord.key))) == ["good", "lead"]
    engine.dispose()


def test_a_database_outage_fails_every_waiting_request_and_the_writer_recovers(database_url, db_engine):
    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none",
                       connect_args={"connect_timeout": 1})
    writer = InboxWriter(down)
    with pytest.raises(OperationalError):
        writer.store("echo", deliveries("lost"))
    writer._engine = make_engine(database_url)
    assert list(keys_of(db_engine, writer.store("echo", deliveries("kept"))).values()) == ["kept"]
    writer._engine.dispose()
