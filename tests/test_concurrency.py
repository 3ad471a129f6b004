"""Order, duplication and concurrency never change who is who."""
import random
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from hub.identity import IdentityRules
from hub.models import Base, InboxState, Profile
from hub.profiles import BatchWriter
from hub.unified import UnifiedActivity, UnifiedRecord
from tests.conftest import hub_config, wait_for
from tests.test_pipeline import snapshot
from tests.test_website import SECRET, send

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def person_records(n_people: int) -> list[UnifiedRecord]:
    """Several records per person across sources, each carrying a different subset of identifiers."""
    records, inbox_id = [], 0
    for p in range(n_people):
        email, phone = ("email", f"p{p}@example.com"), ("phone", f"+1415555{p:04d}")
        anon, shop = ("website_anonymous_id", f"anon-{p}"), ("shopify_customer_id", str(1000 + p))
        for ids, traits, activity in (
            ([anon], {}, ("page.viewed", f"pv-{p}")),
            ([anon, email], {"first_name": f"P{p}"}, ("email.opened", f"eo-{p}")),
            ([shop, email], {"first_name": f"Person {p}", "locale": "en"}, ("order.placed", f"o-{p}")),
            ([shop, phone], {}, ("order.refunded", f"r-{p}")),
        ):
            inbox_id += 1
            at = T0 + timedelta(hours=inbox_id)
            activities = [UnifiedActivity(activity[0], activity[1], at, {"amount": "10.00", "currency": "USD"})] \
                if activity else []
            records.append(UnifiedRecord("test", inbox_id, at, list(ids), dict(traits), activities))
    return records


RECORDS = person_records(3)


def clear(engine):
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in ("inbox", "sync_cursors"):
                connection.execute(table.delete())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(len(RECORDS))), repeats=st.lists(st.integers(0, len(RECORDS) - 1), max_size=6),
       batch=st.integers(1, 5))
def test_any_order_and_duplication_gives_the_same_store(db_engine, order, repeats, batch):
    def process(sequence, size):
        clear(db_engine)
        for start in range(0, len(sequence), size):
            with Session(db_engine) as session, session.begin():
                BatchWriter(session, IdentityRules(), {}).apply(sequence[start:start + size])
        return snapshot(db_engine)

    in_order = process(RECORDS, len(RECORDS))
    assert len(in_order) == 3
    shuffled = [RECORDS[i] for i in order] + [RECORDS[i] for i in repeats]
    assert process(shuffled, batch) == in_order


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_on_interleaved_records_make_one_profile_per_person(make_app, db_engine, redis_url,
                                                                          workers, database_url):
    people = 30
    events = []
    for p in range(people):
        anon, email, phone = f"anon-{p}", f"p{p}@example.com", f"+1415555{p:04d}"
        events += [
            {"id": f"a-{p}", "type": "page.viewed", "anonymous_id": anon},
            {"id": f"b-{p}", "type": "identify", "anonymous_id": anon, "email": email},
            {"id": f"c-{p}", "type": "form.submitted", "email": email, "phone": phone},
            {"id": f"d-{p}", "type": "page.viewed", "anonymous_id": f"anon-{p}-tab2", "phone": phone},
            {"id": f"e-{p}", "type": "identify", "anonymous_id": f"anon-{p}-tab2", "email": email},
        ]
    random.Random(7).shuffle(events)
    overrides = {"connectors": {"echo": {"enabled": False}, "website": {"enabled": True, "webhook_secret": SECRET}},
                 "inbox": {"batch_size": 3}}
    app = make_app(redis_url=redis_url, **overrides)
    app.extensions["tributary"].queue.signal_drain = lambda: False
    client = app.test_client()
    for start in range(0, len(events), 4):
        assert send(client, {"events": events[start:start + 4]}, msg_id=f"m{start}").status_code == 202
    group = workers.configure(hub_config(database_url, redis_url, **overrides))
    group.start(ECHO_SLEEP="0.002"), group.start(ECHO_SLEEP="0.002")

    def done():
        with db_engine.connect() as connection:
            return connection.scalar(select(func.count()).where(InboxState.status != "processed")) == 0

    wait_for(done, timeout=120)
    with db_engine.connect() as connection:
        pids = set(connection.scalars(text("SELECT DISTINCT pid FROM test_effects")))
    assert len(pids) == 2  # both workers took batches
    people_found = snapshot(db_engine)
    assert len(people_found) == people
    for idents, *_ in people_found:
        p = next(v for k, v in idents if k == "email")[1:-len("@example.com")]
        assert idents == sorted([("email", f"p{p}@example.com"), ("phone", f"+1415555{int(p):04d}"),
                                 ("website_anonymous_id", f"anon-{p}"), ("website_anonymous_id", f"anon-{p}-tab2")])
    with db_engine.connect() as connection:
        live = connection.scalar(select(func.count()).where(Profile.merged_into.is_(None)))
    assert live == people
