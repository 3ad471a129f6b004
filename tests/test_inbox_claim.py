"""Claiming reads only pending rows, in due order, whatever the planner's statistics say."""
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from hub import inbox
from hub.connector import Delivery
from hub.models import utcnow


def store(engine, keys, received_at):
    with engine.begin() as connection:
        return inbox.store(connection, "echo", [Delivery(key=k, body=b"{}") for k in keys], received_at=received_at)


def test_a_claim_takes_due_rows_longest_due_first_then_by_id(db_engine):
    now = utcnow()
    store(db_engine, ["late-1", "late-2"], now - timedelta(seconds=5))
    store(db_engine, ["early"], now - timedelta(seconds=60))
    store(db_engine, ["not-due"], now + timedelta(seconds=60))  # a retry waiting for its backoff
    with Session(db_engine) as session, session.begin():
        assert [record.key for record in inbox.claim(session, 10, now)] == ["early", "late-1", "late-2"]
        assert [record.key for record in inbox.claim(session, 2, now)] == ["early", "late-1"]
        assert inbox.has_due(session, now)
        assert not inbox.has_due(session, now - timedelta(seconds=61))


@pytest.mark.postgres
def test_a_claim_reads_the_pending_index_while_statistics_count_processed_rows_as_pending(db_engine):
    ids = store(db_engine, [f"k{i}" for i in range(5000)], utcnow() - timedelta(seconds=1))
    with db_engine.begin() as connection:
        connection.execute(text("ANALYZE inbox, inbox_state"))  # every row pending, as a large backlog starts
        connection.execute(text("UPDATE inbox_state SET status = 'processed' WHERE inbox_id < :last"),
                           {"last": max(ids) - 10})
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # as on a table too big to read whole
        compiled = inbox.claim_statement(1000, utcnow(), skip_locked=True).compile(connection)
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params))
    assert "Index Scan using ix_inbox_state_pending on inbox_state" in plan, plan  # then each record by id:
    assert "Index Scan using pk_inbox on inbox" in plan, plan
    assert "pk_inbox_state" not in plan and "Sort" not in plan, plan
