"""Set-based writes of a whole batch: one statement per table, whatever the row count.

On PostgreSQL each column travels as one array parameter and ``unnest()`` turns the arrays
back into rows, so a thousand rows cost one short statement, parsed once, instead of a
thousand executions or a statement with thousands of placeholders. SQLite, embedded and
local, gets the same effect from a plain ``executemany``.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Mapping, Sequence

from sqlalchemy import JSON, Connection, Table, and_, bindparam, text
from sqlalchemy.dialects import postgresql

from hub.db import upsert_insert


def insert(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
           conflict: Sequence[str] = (), update: Sequence[str] = ()) -> None:
    """INSERT ``rows`` (dicts with the same keys); on a ``conflict`` of those columns, do nothing,
    or set the ``update`` columns to the new values."""
    if not rows:
        return
    columns = tuple(rows[0])
    if connection.dialect.name == "postgresql":
        statement = _pg_insert(table, columns, tuple(conflict), tuple(update))
        connection.execute(statement, _arrays(table, columns, rows))
        return
    statement = upsert_insert(connection.dialect.name, table)
    if conflict:
        statement = (statement.on_conflict_do_update(index_elements=list(conflict),
                                                     set_={c: statement.excluded[c] for c in update})
                     if update else statement.on_conflict_do_nothing(index_elements=list(conflict)))
    connection.execute(statement, list(rows))


def update(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
           values: Sequence[str], newer: str | None = None) -> None:
    """UPDATE the row matching each row's ``keys`` columns with its ``values`` columns; with
    ``newer``, only where the stored value of that column is older than the new one."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        statement = _pg_update(table, tuple(keys), tuple(values), newer)
        connection.execute(statement, _arrays(table, (*keys, *values), rows))
        return
    condition = and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
    if newer:
        condition = and_(condition, table.c[newer] < bindparam(f"v_{newer}"))
    statement = table.update().where(condition).values({v: bindparam(f"v_{v}") for v in values})
    connection.execute(statement, [{**{f"k_{k}": r[k] for k in keys}, **{f"v_{v}": r[v] for v in values}}
                                   for r in rows])


def _arrays(table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """One list per column (JSON columns serialised), keyed as the statements name them."""
    arrays = {}
    for n, name in enumerate(columns):
        values = [row[name] for row in rows]
        if isinstance(table.c[name].type, JSON):
            values = [None if v is None else json.dumps(v) for v in values]
        arrays[f"c{n}"] = values
    return arrays


def _unnest(table: Table, columns: Sequence[str]) -> str:
    """``unnest(CAST(:c0 AS type[]), ...)``: the column arrays as rows."""
    dialect = postgresql.dialect()
    casts = ", ".join(f"CAST(:c{n} AS {table.c[name].type.compile(dialect=dialect)}[])"
                      for n, name in enumerate(columns))
    return f"unnest({casts})"


@functools.cache
def _pg_insert(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...], update: tuple[str, ...]):
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM {_unnest(table, columns)}"
    if conflict:
        action = (f"UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in update)}" if update else "NOTHING")
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO {action}"
    return text(sql)


@functools.cache
def _pg_update(table: Table, keys: tuple[str, ...], values: tuple[str, ...], newer: str | None):
    columns = (*keys, *values)
    sql = (f"UPDATE {table.name} AS t SET {', '.join(f'{v} = v.{v}' for v in values)} "
           f"FROM {_unnest(table, columns)} AS v({', '.join(columns)}) "
           f"WHERE {' AND '.join(f't.{k} = v.{k}' for k in keys)}")
    if newer:
        sql += f" AND t.{newer} < v.{newer}"
    return text(sql)
