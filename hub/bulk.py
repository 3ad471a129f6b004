"""Set-based writes of a whole batch: one statement per table, whatever the row count.

On PostgreSQL the rows travel as one JSON document that ``json_to_recordset()`` turns back
into typed rows, so a thousand rows cost one short statement and one parameter (serialised
by orjson), instead of a thousand executions or a statement with thousands of
placeholders. SQLite, embedded and local, gets the same effect from a plain ``executemany``.
"""
from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

from sqlalchemy import Column, Connection, Table, and_, bindparam, text
from sqlalchemy.dialects import postgresql

from hub import json_codec
from hub.db import array_literal, upsert_insert


def insert(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
           conflict: Sequence[str] = (), update: Sequence[str] = (),
           returning: Sequence[str] = (), only_if: str | None = None) -> list[tuple]:
    """INSERT ``rows`` (dicts with the same keys); on a ``conflict`` of those columns, do nothing,
    or set the ``update`` columns to the new values, where the SQL condition ``only_if`` holds
    (if given; it may name ``excluded`` and the table). Returns the ``returning`` columns of the
    rows written (none skipped by a conflict or by ``only_if``), in no particular order."""
    if not rows:
        return []
    columns = tuple(rows[0])
    if connection.dialect.name == "postgresql":
        statement = _pg_insert(table, columns, tuple(conflict), tuple(update), tuple(returning), only_if)
        result = connection.execute(statement, {"rows": _document(rows)})
        return [tuple(row) for row in result] if returning else []
    statement = upsert_insert(connection.dialect.name, table)
    if conflict:
        statement = (statement.on_conflict_do_update(index_elements=list(conflict),
                                                     set_={c: statement.excluded[c] for c in update},
                                                     where=text(only_if) if only_if else None)
                     if update else statement.on_conflict_do_nothing(index_elements=list(conflict)))
    if not returning:
        connection.execute(statement, list(rows))
        return []
    return [tuple(row) for row in connection.execute(statement.returning(*(table.c[c] for c in returning)),
                                                     list(rows))]


def update(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: Sequence[str],
           values: Sequence[str], newer: str | None = None) -> None:
    """UPDATE the row matching each row's ``keys`` columns with its ``values`` columns; with
    ``newer``, only where the stored value of that column is older than the new one."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        statement = _pg_update(table, tuple(keys), tuple(values), newer)
        connection.execute(statement, {"rows": _document(rows)})
        return
    condition = and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
    if newer:
        condition = and_(condition, table.c[newer] < bindparam(f"v_{newer}"))
    statement = table.update().where(condition).values({v: bindparam(f"v_{v}") for v in values})
    connection.execute(statement, [{**{f"k_{k}": r[k] for k in keys}, **{f"v_{v}": r[v] for v in values}}
                                   for r in rows])


def move(connection: Connection, table: Table, match: str, target: str, moves: Mapping[Any, Any],
         **values: Any) -> None:
    """On every row whose ``match`` column holds a key of ``moves``, set ``target`` to that key's
    value, and each of ``values`` to its value."""
    if not moves:
        return
    if connection.dialect.name == "postgresql":
        connection.execute(_pg_move(table, match, target, tuple(sorted(values))),
                           {"rows": _document([{"old": old, "new": new} for old, new in moves.items()]),
                            "olds": array_literal(moves), **values})
        return
    statement = (table.update().where(table.c[match] == bindparam("old"))
                 .values({target: bindparam("new"), **{name: bindparam(name) for name in values}}))
    connection.execute(statement, [{"old": old, "new": new, **values} for old, new in moves.items()])


def _document(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as one JSON array (times in ISO 8601)."""
    return json_codec.dumps(rows)


def _sql_type(column: Column) -> str:
    """The column's PostgreSQL type, for a cast or a record definition: without its collation
    (a comparison with the column takes the column's own)."""
    dialect = postgresql.dialect()
    kind = column.type.dialect_impl(dialect)
    if getattr(kind, "collation", None):
        kind = kind.copy()
        kind.collation = None
    return kind.compile(dialect=dialect)


def _recordset(table: Table, columns: Sequence[str]) -> str:
    """``json_to_recordset(:rows) AS r(column type, ...)``: the JSON rows, typed as the table's."""
    types = ", ".join(f"{name} {_sql_type(table.c[name])}" for name in columns)
    return f"json_to_recordset(CAST(:rows AS json)) AS r({types})"


@functools.cache
def _pg_insert(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...], update: tuple[str, ...],
               returning: tuple[str, ...] = (), only_if: str | None = None):
    names = ", ".join(columns)
    sql = f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {_recordset(table, columns)}"
    if conflict:
        action = (f"UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in update)}" if update else "NOTHING")
        if update and only_if:
            action += f" WHERE {only_if}"
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO {action}"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return text(sql)


@functools.cache
def _pg_update(table: Table, keys: tuple[str, ...], values: tuple[str, ...], newer: str | None):
    columns = (*keys, *values)
    sql = (f"UPDATE {table.name} AS t SET {', '.join(f'{v} = r.{v}' for v in values)} "
           f"FROM {_recordset(table, columns)} WHERE {' AND '.join(f't.{k} = r.{k}' for k in keys)}")
    if newer:
        sql += f" AND t.{newer} < r.{newer}"
    return text(sql)


@functools.cache
def _pg_move(table: Table, match: str, target: str, values: tuple[str, ...]):
    old_type = _sql_type(table.c[match])
    types = f"old {old_type}, new {_sql_type(table.c[target])}"
    assignments = ", ".join([f"{target} = r.new", *(f"{name} = :{name}" for name in values)])
    # the array names the rows to the planner: it reads them through the index, where the
    # recordset's fixed estimate had it hash-join against a scan of the whole table
    return text(f"UPDATE {table.name} AS t SET {assignments} FROM json_to_recordset(CAST(:rows AS json)) "
                f"AS r({types}) WHERE t.{match} = ANY(CAST(:olds AS {old_type}[])) AND t.{match} = r.old")
