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
        if not statement.startswith("INSERT INTO inbox"):
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


def test_requests_arriving_during_a_commit_share_the_next_one(database_url, db_engine):
    engine = make_engine(database_url)
    gate = GatedInserts(engine)
    signals = []
    writer = InboxWriter(engine, on_stored=lambda: signals.append(1))
    leader, first = start(writer.store, "echo", deliveries("a1"))
    assert gate.first_started.wait(10)
    followers = [start(writer.store, "echo", deliveries(f"b{i}", f"c{i}")) for i in range(5)]
    wait_for_waiting(writer, 5)
    gate.release()
    for thread, _ in [(leader, first), *followers]:
        thread.join(10)
    assert gate.inserts == 2  # the lone first request, then the five that waited, together
    assert len(signals) == 2
    assert keys_of(db_engine, first["ids"]) == {first["ids"][0]: "a1"}
    for i, (_, outcome) in enumerate(followers):
        assert sorted(keys_of(db_engine, outcome["ids"]).values()) == [f"b{i}", f"c{i}"]
    with db_engine.connect() as connection:
        assert connection.scalar(select(InboxRecord.id).where(InboxRecord.key == "a1")) == first["ids"][0]
        assert len(connection.execute(select(InboxRecord.id)).all()) == 11
    engine.dispose()


def test_a_key_twice_in_one_batch_is_new_for_the_first_request_only(database_url, db_engine):
    engine = make_engine(database_url)
    gate = GatedInserts(engine)
    writer = InboxWriter(engine)
    leader, _ = start(writer.store, "echo", deliveries("x0"))
    assert gate.first_started.wait(10)
    one = start(writer.store, "echo", deliveries("same", "only-one"))
    wait_for_waiting(writer, 1)
    two = start(writer.store, "echo", deliveries("same"))
    wait_for_waiting(writer, 2)
    gate.release()
    for thread, _ in (one, two):
        thread.join(10)
    leader.join(10)
    assert sorted(keys_of(db_engine, one[1]["ids"]).values()) == ["only-one", "same"]
    assert two[1] == {"ids": []}  # answered as a duplicate: the row is the first request's
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
    gate = GatedInserts(engine)
    writer = InboxWriter(engine)
    leader, _ = start(writer.store, "echo", deliveries("lead"))
    assert gate.first_started.wait(10)
    good = start(writer.store, "echo", deliveries("good"))
    wait_for_waiting(writer, 1)
    unstorable = [Delivery(key="bad", body=b"{}", headers={"x-bad": object()})]  # not JSON
    bad = start(writer.store, "echo", unstorable)
    wait_for_waiting(writer, 2)
    gate.release()
    for thread in (leader, good[0], bad[0]):
        thread.join(10)
    assert list(keys_of(db_engine, good[1]["ids"]).values()) == ["good"]
    assert "ids" not in bad[1] and isinstance(bad[1]["error"], Exception)
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
