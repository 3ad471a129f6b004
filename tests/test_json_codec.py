"""The hub's JSON reading and writing agree with the standard library, and array parameters
reach PostgreSQL intact."""
import json
import math
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select, text

from hub import json_codec
from hub.db import array_literal, one_of
from hub.models import Identity

#: any JSON value, with integers far beyond 64 bits and every kind of text
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**30, max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans())
def test_any_json_text_reads_as_the_standard_library_reads_it(value, ascii_only):
    data = json.dumps(value, ensure_ascii=ascii_only)
    expected = json.loads(data)
    for given in (data, data.encode(), bytearray(data.encode()), memoryview(data.encode())):
        assert json_codec.loads(given) == expected


@pytest.mark.parametrize("data", [
    b'{"id": 123456789012345678901234567890}',  # orjson would read a float
    b'{"id": -9223372036854775809}',
    b'{"n": NaN, "big": 1e400}',                  # orjson rejects these
    b'\xef\xbb\xbf{"a": 1}',                     # a byte-order mark
    '{"a": 1}'.encode("utf-16"),
    b'{"s": "\\ud800"}',                          # a lone surrogate
])
def test_what_orjson_reads_otherwise_or_rejects_reads_as_the_standard_library(data):
    got, expected = json_codec.loads(data), json.loads(data)
    assert repr(got) == repr(expected)
    assert type(got) is type(expected)


def test_unreadable_json_raises_the_standard_error():
    for data in (b"", b'{"a"', b"nope", "{'a': 1}"):
        with pytest.raises(json.JSONDecodeError):
            json_codec.loads(data)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_written_json_reads_back_to_the_value(value):
    assert json.loads(json_codec.dumps(value)) == value


def test_times_are_written_as_isoformat_writes_them_whichever_path_writes():
    moments = [datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc), datetime(2026, 3, 1, 9, 30, 0, 120),
               datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))), date(2026, 3, 1)]
    expected = [m.isoformat() for m in moments]
    assert json.loads(json_codec.dumps(moments)) == expected
    assert json.loads(json_codec.dumps([moments, 2**70, {1: "x"}])) == [expected, 2**70, {"1": "x"}]


def test_an_unknown_type_goes_through_default_or_raises():
    class Money:
        pass

    assert json_codec.dumps({"m": Money()}, default=lambda v: "money") == '{"m":"money"}'
    assert json_codec.dumps({"m": Money(), "n": 2**70}, default=lambda v: "money") == \
        '{"m":"money","n":1180591620717411303424}'
    with pytest.raises(TypeError):
        json_codec.dumps({"m": Money()})
    assert json_codec.dumps({"f": math.pi}) == '{"f":3.141592653589793}'


@pytest.mark.postgres
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))),
       st.lists(st.integers(min_value=-2**31, max_value=2**31 - 1)))
def test_an_array_literal_reaches_postgresql_element_for_element(db_engine, strings, numbers):
    with db_engine.connect() as connection:
        got = connection.execute(text("SELECT CAST(:s AS varchar[]), CAST(:n AS int[])"),
                                 {"s": array_literal(strings), "n": array_literal(numbers)}).one()
    assert (list(got[0]), list(got[1])) == (strings, numbers)


@pytest.mark.postgres
def test_a_set_of_values_is_a_constant_array_to_the_planner(db_engine):
    """Read as a constant, the array is hashed once; evaluated per row, a scan walks it per row."""
    values = [f"p{i}" for i in range(50)]
    statement = select(Identity.id).where(one_of("postgresql", Identity.profile_id, values))
    with db_engine.connect() as connection:
        connection.exec_driver_sql("SET LOCAL enable_indexscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        compiled = statement.compile(connection)
        plan = "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params))
    assert "Seq Scan on identities" in plan, plan
    assert "= ANY ('{p0,p1,p2," in plan and "cstring" not in plan, plan
