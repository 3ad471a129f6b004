"""Set-based writes: rows travel as one JSON document and come back exactly."""
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from hub import bulk
from hub.models import Activity, Profile

AT = datetime(2026, 11, 1, 9, 30, 15, 250, tzinfo=timezone(timedelta(hours=2)))


def test_inserted_rows_and_their_json_come_back_as_written(db_engine):
    properties = {"order_id": 98765432109876543210, "items": [{"sku": "A-1", "qty": 2}], "note": None}
    with db_engine.begin() as connection:
        bulk.insert(connection, Profile.__table__, [{"id": "p-bulk", "created_at": AT, "updated_at": AT,
                                                     "metrics": {}}])
        written = bulk.insert(connection, Activity.__table__, [
            {"profile_id": "p-bulk", "type": "order.placed", "source": "shop", "source_id": "o-1",
             "occurred_at": AT, "properties": properties, "inbox_id": None}],
            conflict=("source", "source_id", "type"), returning=("source_id",))
        again = bulk.insert(connection, Activity.__table__, [
            {"profile_id": "p-bulk", "type": "order.placed", "source": "shop", "source_id": "o-1",
             "occurred_at": AT, "properties": {}, "inbox_id": None}],
            conflict=("source", "source_id", "type"), returning=("source_id",))
    with db_engine.connect() as connection:
        row = connection.execute(select(Activity.occurred_at, Activity.properties)).one()
    assert (written, again) == ([("o-1",)], [])
    assert row.occurred_at == AT
    assert row.properties == properties
