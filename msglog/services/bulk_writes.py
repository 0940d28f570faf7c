"""Writing many rows, each with its own values, in one statement.

Django's `bulk_update` builds a CASE WHEN expression per field and row, which costs
tens of milliseconds per row to compile at a thousand rows: far too slow for applying
provider reports in batches. On PostgreSQL :func:`update_fields` sends
``UPDATE ... FROM unnest(%b::type[], ...)`` instead, and :func:`insert_new`
``INSERT ... SELECT * FROM unnest(...) ON CONFLICT DO NOTHING``: one array parameter per
column, bound by the server (msglog/services/prepared.py). The statement's text depends only on
the model and the columns, so PostgreSQL prepares it once per connection, and neither
side parses thousands of quoted values out of the SQL (Django's cursors would write each
one into the text). Elsewhere (SQLite) they fall back to `bulk_update` and `bulk_create`.
"""

from __future__ import annotations

import gc
import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from django.db import connection, models
from django.db.models import Field, Model
from django.db.models.base import ModelState

from companies.models import Company
from msglog.services.prepared import server_bound_cursor

CHUNK = 5000

_M = TypeVar("_M", bound=Model)

#: Values that a field's get_db_prep_save hands through unchanged, by field kind: for
#: them the call (a few Python calls per value, a fifth of a batch's CPU) is skipped.
_PASSED_THROUGH: tuple[tuple[type[Field], type], ...] = (
    (models.CharField, str),
    (models.TextField, str),
    (models.BooleanField, bool),
    (models.IntegerField, int),  # also the auto primary keys
    (models.DateTimeField, datetime),  # when aware (a naive one gets Django's warning)
)


def update_fields(objects: Sequence[Model], fields: Sequence[str]) -> None:
    """Write `fields` of each object (all of one model, saved before) to its row."""
    if not objects:
        return
    model = type(objects[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objects, list(fields), batch_size=500)
        return
    columns = (model._meta.pk, *(_column_field(model, name) for name in fields))
    _write(_update_sql(model, columns), objects, columns)


def _column_field(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)  # a column of the model, not a reverse relation
    return field


def insert_new(objects: Sequence[Model]) -> None:
    """Insert the objects (all of one model, not saved, no primary key set) with every
    concrete field; one that a unique constraint says exists already is skipped."""
    if not objects:
        return
    model = type(objects[0])
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects, ignore_conflicts=True, batch_size=500)
        return
    columns = tuple(f for f in model._meta.concrete_fields if not f.primary_key)
    for obj in objects:  # what Django's save() does first: defaults that depend on time
        for field in columns:
            setattr(obj, field.attname, field.pre_save(obj, add=True))
    _write(_insert_sql(model, columns), objects, columns)


def _write(sql: str, objects: Sequence[Model], columns: Sequence[Field]) -> None:
    with server_bound_cursor() as cursor:
        for start in range(0, len(objects), CHUNK):
            chunk = objects[start : start + CHUNK]
            cursor.execute(sql, [_column(chunk, field) for field in columns])


def _column(objects: Sequence[Model], field: Field) -> list:
    """One column's values, prepared for the database as Django's save() prepares them."""
    attname = field.attname
    passes = _passed_through(field)
    prep = field.get_db_prep_save
    values = [getattr(obj, attname) for obj in objects]
    if passes is datetime:
        return [
            value
            if value is None or (type(value) is datetime and value.tzinfo is not None)
            else prep(value, connection)
            for value in values
        ]
    return [
        value if value is None or type(value) is passes else prep(value, connection)
        for value in values
    ]


def _passed_through(field: Field) -> type | None:
    """The type of value this field's get_db_prep_save returns as it is, if any."""
    if isinstance(field, models.ForeignKey):
        field = field.target_field
    for kind, value_type in _PASSED_THROUGH:
        if isinstance(field, kind):
            return value_type
    return None


def _arrays(columns: Sequence[Field]) -> tuple[str, str]:
    """("unnest(%b::type[], ...)", '"col", ...') for these columns. The arrays travel in
    binary (%b: no quoting of each value, about twice as fast for text) and have the
    columns' types without their modifiers (varchar, not varchar(24)): an explicit cast
    would cut a value that is too long, while the assignment to the column refuses it,
    as a plain INSERT or UPDATE does."""
    quote = connection.ops.quote_name
    arrays = ", ".join(f"%b::{_array_type(field)}[]" for field in columns)
    return f"unnest({arrays})", ", ".join(quote(field.column) for field in columns)


def _array_type(field: Field) -> str:
    db_type = field.db_type(connection)
    assert db_type is not None  # a concrete column has a database type
    return _TYPMOD.sub("", db_type)


_TYPMOD = re.compile(r"\([^)]*\)")


@lru_cache(maxsize=64)
def _update_sql(model: type[Model], columns: tuple[Field, ...]) -> str:
    quote = connection.ops.quote_name
    unnest, names = _arrays(columns)
    pk = quote(columns[0].column)
    assignments = ", ".join(
        f"{quote(field.column)} = v.{quote(field.column)}" for field in columns[1:]
    )
    return (
        f"UPDATE {quote(model._meta.db_table)} AS t SET {assignments} "  # noqa: S608 — our own names
        f"FROM {unnest} AS v({names}) WHERE t.{pk} = v.{pk}"
    )


@lru_cache(maxsize=64)
def _insert_sql(model: type[Model], columns: tuple[Field, ...]) -> str:
    unnest, names = _arrays(columns)
    table = connection.ops.quote_name(model._meta.db_table)
    return (
        f"INSERT INTO {table} ({names}) SELECT * FROM {unnest} "  # noqa: S608 — our own names
        "ON CONFLICT DO NOTHING"
    )


def reserve_ids(model: type[Model], count: int) -> list[int]:
    """`count` new primary keys from the model's sequence (PostgreSQL), in one query: rows
    written by COPY or a hand-built INSERT then need nothing read back."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


_gc_lock = threading.Lock()


_gc_pauses = 0


_gc_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk send makes its message objects.

    A 100,000-recipient send creates half a million objects that all stay alive; the
    collector would walk them again and again, finding nothing (a third of the send's
    Python time). Reference counting still frees everything short-lived.

    Pauses may overlap (threads of one web process, a send inside a batch's pause): the
    collector is off from the first one's start to the last one's end, and is turned
    back on only if it was on before.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


class CopyWriter:
    """The COPY of one model's rows: the columns that vary per row first (as given), then
    every other column with one value for all rows (the given ones, else the model's
    default), so a column added to the model later still gets its default."""

    def __init__(self, model: type[Model], varying: Sequence[str], constants: dict) -> None:
        fields = {f.attname: f for f in model._meta.concrete_fields}
        rest = [name for name in fields if name not in varying and not fields[name].primary_key]
        self.tail = tuple(
            _db_value(
                fields[name], constants[name] if name in constants else _default(fields[name])
            )
            for name in rest
        )
        columns = ", ".join(connection.ops.quote_name(fields[n].column) for n in (*varying, *rest))
        self.sql = f"COPY {model._meta.db_table} ({columns}) FROM STDIN"


def _default(field: Field) -> Any:
    if field.null and not field.has_default():
        return None
    return field.get_default()


def _db_value(field: Field, value: Any) -> Any:
    if field.get_internal_type() == "JSONField":
        return json.dumps(value)
    return value


def loaded(
    model: type[_M], values: dict, company: Company | None = None, db: str | None = None
) -> _M:
    """A model instance as if read from the database (`db`, by default the default
    connection's alias), from a dict of every column.

    What `Model.from_db` does, without its per-field work: a 100,000-recipient send
    would spend seconds in it.
    """
    instance = model.__new__(model)
    instance.__dict__.update(values)
    instance._state = ModelState()
    instance._state.adding = False
    instance._state.db = db or connection.alias
    if company is not None:
        instance._state.fields_cache["company"] = company
    return instance
