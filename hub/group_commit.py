"""Group commit for the webhook receiver: concurrent requests of one process share a commit.

Every accepted webhook must be durable before its 202, and a commit waits for the disk. A
request thread hands its deliveries to ``InboxWriter.store``; the first thread to find no
write in flight becomes the leader and writes every submission waiting at that moment in
one INSERT and one commit, then signals the workers once. Followers sleep until the
leader hands them their ids (or their error); the oldest submission still waiting then
leads the next write. No thread waits on a timer: a lone request is written at once, and
under load a batch forms while the previous one commits.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from hub import inbox
from hub.connector import Delivery
from hub.db import run_atomic, run_in_transaction

#: rows written by one leader at most (a batch of many large SendGrid requests stays bounded)
MAX_BATCH_ROWS = 1000


@dataclass(eq=False)
class _Submission:
    connector: str
    deliveries: Sequence[Delivery]
    new_ids: list[int] = field(default_factory=list)
    error: BaseException | None = None
    #: written (the result is set); woken but not done means: lead the next write
    done: bool = False
    woken: threading.Event = field(default_factory=threading.Event)


class InboxWriter:
    """Stores webhook deliveries in the inbox, many concurrent requests per commit."""

    def __init__(self, engine: Engine, on_stored: Callable[[], object] = lambda: None):
        self._engine = engine
        self._on_stored = on_stored
        self._waiting: list[_Submission] = []
        self._writing = False
        self._lock = threading.Lock()

    def store(self, connector: str, deliveries: Sequence[Delivery]) -> list[int]:
        """Insert the deliveries not seen before, durably; return their new row ids.

        Raises what the database raised for this submission's write.
        """
        mine = _Submission(connector, deliveries)
        with self._lock:
            self._waiting.append(mine)
            leading = not self._writing
            self._writing = True
        if not leading:
            mine.woken.wait()
            if mine.done:
                return _result(mine)
        with self._lock:  # leading: ``mine`` is the oldest waiting, so it is in the batch
            batch = self._take_batch()
        try:
            self._write(batch)
        finally:
            for submission in batch:
                submission.done = True
                submission.woken.set()
            with self._lock:
                if self._waiting:
                    self._waiting[0].woken.set()  # it leads the next write
                else:
                    self._writing = False
        return _result(mine)

    def _take_batch(self) -> list[_Submission]:
        """The waiting submissions, oldest first, up to MAX_BATCH_ROWS rows (at least one)."""
        batch, rows = [], 0
        while self._waiting and (not batch or rows + len(self._waiting[0].deliveries) <= MAX_BATCH_ROWS):
            submission = self._waiting.pop(0)
            batch.append(submission)
            rows += len(submission.deliveries)
        return batch

    def _write(self, batch: list[_Submission]) -> None:
        try:
            _write_together(self._engine, batch)
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, DBAPIError) and exc.connection_invalidated:
                _fail(batch, exc)
            else:  # one submission's data may be at fault: write each alone, so only it fails
                for submission in batch:
                    try:
                        _write_together(self._engine, [submission])
                    except Exception as alone:
                        _fail([submission], alone)
        except BaseException as exc:
            _fail(batch, exc)
            raise
        if any(submission.new_ids for submission in batch):
            self._on_stored()


def _write_together(engine: Engine, batch: list[_Submission]) -> None:
    """One INSERT (one per connector) and one commit for the whole batch; sets each ``new_ids``."""
    def statement(connection):
        stored: dict[tuple[str, str], int] = {}
        for name in dict.fromkeys(submission.connector for submission in batch):
            deliveries = [d for s in batch if s.connector == name for d in s.deliveries]
            stored.update(((name, key), row_id)
                          for row_id, key in inbox.store_keyed(connection, name, deliveries))
        return stored

    stored = run_atomic(engine, statement) if len(batch) == 1 else run_in_transaction(engine, statement)
    for submission in batch:
        mine = []
        for key in dict.fromkeys(inbox.stored_key(d) for d in submission.deliveries):
            row_id = stored.pop((submission.connector, key), None)  # a key twice in a batch: the first is new
            if row_id is not None:
                mine.append(row_id)
        submission.new_ids = mine


def _fail(batch: list[_Submission], error: BaseException) -> None:
    for submission in batch:
        submission.error = error


def _result(submission: _Submission) -> list[int]:
    if submission.error is not None:
        raise submission.error
    return submission.new_ids
