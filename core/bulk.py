"""Writing many rows at once, the same rows as `bulk_create` would write (SPEC §3 "Ledger at
scale": set-based batches).

Django's `bulk_create` builds and compiles one SQL parameter per value at every call, which
costs more than the database's own work both for one write and for thousands. On PostgreSQL,
`bulk_insert` and `bulk_insert_rows` stream `COPY_MIN_ROWS` rows or more with `COPY` (ids
drawn from the table's sequence first when they are needed) and send fewer in one `INSERT`
whose SQL is built once per shape; `bulk_upsert_rows` sends each column as one array to
`INSERT ... SELECT FROM unnest(...) ON CONFLICT`. Each field's value is the instance's after
its `pre_save` (defaults, `auto_now`, a file stored), a database default is left to the
database. Other databases (SQLite) use `bulk_create`.
"""

import csv
import functools
import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from django.db import connections, models
from django.db.models import Case, F, Value, When
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone

M = TypeVar("M", bound=models.Model)

# From this many rows an insert goes through COPY on PostgreSQL (fewer: one INSERT).
COPY_MIN_ROWS = 100
CHUNK_SIZE = 1000


def bulk_insert(model: type[M], objs: Sequence[M], *, ids: bool = True) -> list[M]:
    """Insert unsaved instances; with `ids`, each gets its primary key (as `bulk_create`)."""
    objs = list(objs)
    connection = connections[model._default_manager.db]
    if connection.vendor != "postgresql" or not objs:
        return model._default_manager.bulk_create(objs, batch_size=CHUNK_SIZE)
    fields = _written_fields(model, objs)
    pk = model._meta.pk
    assert pk is not None
    returning = pk if ids and pk not in fields else None
    new_ids = _write(connection, model, fields, _values(fields, objs), returning=returning)
    for obj, new_id in zip(objs, new_ids or [None] * len(objs), strict=True):
        if new_id is not None:
            setattr(obj, pk.attname, new_id)
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def bulk_insert_rows(model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows given as {attname: value}, without building an instance per row; a field a
    row leaves out gets its default (a database-generated primary key and a database default
    are left to the database)."""
    connection = connections[model._default_manager.db]
    if connection.vendor != "postgresql" or not rows:
        model._default_manager.bulk_create([model(**row) for row in rows], batch_size=CHUNK_SIZE)
        return
    given = rows[0].keys()
    fields: list[Any] = []
    fill: list[tuple[str, Callable[[], Any]]] = []
    for field in model._meta.concrete_fields:
        if field.attname in given:
            fields.append(field)
        elif (field.primary_key and getattr(field, "db_returning", False)) or getattr(
            field, "has_db_default", lambda: False
        )():
            continue
        else:
            fields.append(field)
            fill.append((field.attname, _default_maker(field)))
    names = [f.attname for f in fields]
    values = []
    for row in rows:
        if fill:
            row = {**row, **{name: make() for name, make in fill}}
        values.append([row[name] for name in names])
    _write(connection, model, fields, values)


def bulk_update_rows(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    constants: Mapping[str, Any] | None = None,
) -> None:
    """Update rows given as {attname: value}, each with its primary key and the same other
    fields, and set `constants` ({attname: value}) on every one of them, in one statement: on
    PostgreSQL `UPDATE ... FROM unnest(arrays)`, one array per column (`bulk_update` writes a
    CASE per row and field, and Django builds each, which costs more than the update)."""
    if not rows:
        return
    connection = connections[model._default_manager.db]
    pk = model._meta.pk
    assert pk is not None
    given = [f for f in model._meta.concrete_fields if f.attname in rows[0] and f is not pk]
    constants_given = constants or {}
    constant_fields = [f for f in model._meta.concrete_fields if f.attname in constants_given]
    if connection.vendor != "postgresql":
        # one UPDATE too: a CASE per row for each given field (fine at SQLite's scale)
        model._default_manager.filter(pk__in=[row[pk.attname] for row in rows]).update(
            **constants_given,
            **{
                f.attname: Case(
                    *(When(pk=row[pk.attname], then=Value(row[f.attname])) for row in rows),
                    default=F(f.attname),
                    output_field=f,
                )
                for f in given
            },
        )
        return
    quote = connection.ops.quote_name
    columns = [pk, *given]
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in columns)
    names = ", ".join(quote(f.column) for f in columns)
    sets = [f"{quote(f.column)} = v.{quote(f.column)}" for f in given]
    sets += [f"{quote(f.column)} = %s" for f in constant_fields]
    values = [[row[f.attname] for f in columns] for row in rows]
    with connection.cursor() as cursor:
        # Only model metadata (quoted column and table names, column types) is formatted in.
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} AS t SET {', '.join(sets)} "  # noqa: S608
            f"FROM unnest({arrays}) AS v({names}) "
            f"WHERE t.{quote(pk.column)} = v.{quote(pk.column)}",
            [
                # the SET clause's constants come first, then the arrays
                *[
                    f.get_db_prep_save(constants_given[f.attname], connection)
                    for f in constant_fields
                ],
                *_columns_prepared(connection, columns, values),
            ],
        )


def insert_select_sql(
    model: type[models.Model],
    expressions: Mapping[str, str | tuple[str, Sequence[Any]]],
    source: str,
) -> tuple[str, list[Any]]:
    """PostgreSQL: `INSERT INTO <table> (...) SELECT ... FROM <source>` and its parameters, for
    rows the database derives from others (a staging table, or the rows an `INSERT ...
    RETURNING` gave in a `WITH`), with no Python per row. Each field named in `expressions`
    (attname: SQL over `source`, or (SQL, its parameters)) takes it, every other concrete
    field its constant default; a generated primary key or a database default is left to the
    database.
    A field whose default is a callable must be given (one call would serve every row)."""
    connection = connections[model._default_manager.db]
    quote = connection.ops.quote_name
    names: list[str] = []
    selected: list[str] = []
    params: list[Any] = []
    for field in model._meta.concrete_fields:
        if field.attname in expressions:
            expression = expressions[field.attname]
            sql, given = (expression, ()) if isinstance(expression, str) else expression
            selected.append(sql)
            params.extend(given)
        elif (field.primary_key and getattr(field, "db_returning", False)) or getattr(
            field, "has_db_default", lambda: False
        )():
            continue
        elif field.has_default() and callable(field.default):
            raise ValueError(f"{model.__name__}.{field.attname}: give its value per row")
        else:
            selected.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
        names.append(quote(field.column))
    unknown = set(expressions) - {f.attname for f in model._meta.concrete_fields}
    if unknown:
        raise ValueError(f"{model.__name__} has no column {sorted(unknown)!r}")
    statement = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(names)}) "  # noqa: S608
        f"SELECT {', '.join(selected)} FROM {source}"
    )
    return statement, params


def _default_maker(field: Any) -> Callable[[], Any]:
    """What a row left out gets: `auto_now` the time, a callable default its call (each row
    its own), else the constant default."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return timezone.now
    if field.has_default() and callable(field.default):
        return field.default
    constant = field.get_default()
    return lambda: constant


def bulk_upsert_rows(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
) -> None:
    """Insert rows given as {attname: value} (each with every column but a generated primary
    key), updating `update_fields` of the row already holding the same `unique_fields`
    (`bulk_create(update_conflicts=True)`)."""
    connection = connections[model._default_manager.db]
    if connection.vendor != "postgresql" or not rows:
        model._default_manager.bulk_create(
            [model(**row) for row in rows],
            batch_size=CHUNK_SIZE,
            update_conflicts=True,
            unique_fields=unique_fields,
            update_fields=update_fields,
        )
        return
    given = rows[0].keys()
    fields: list[Any] = [f for f in model._meta.concrete_fields if f.attname in given]
    values = [[row[f.attname] for f in fields] for row in rows]
    _write(
        connection,
        model,
        fields,
        values,
        conflict=(tuple(unique_fields), tuple(update_fields)),
    )


def _write(
    connection: Any,
    model: type[models.Model],
    fields: Sequence[Any],
    values: list[list[Any]],
    *,
    returning: Any = None,
    conflict: tuple[tuple[str, ...], tuple[str, ...]] | None = None,
) -> list[Any] | None:
    """PostgreSQL: write the rows (each a list of `fields`' values), by COPY when many, else
    one INSERT whose SQL is built once per shape (Django would compile it at every call);
    with `returning` (a generated primary key), the new keys in row order. `conflict`:
    (unique fields, fields to update), an upsert of arrays."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if conflict is not None:
            sql = _upsert_sql(model, tuple(fields), *conflict)
            cursor.execute(sql, _columns_prepared(connection, fields, values))
            return None
        if len(values) >= COPY_MIN_ROWS:
            new_ids = None
            if returning is not None:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                    [table, returning.column, len(values)],
                )
                new_ids = [value for (value,) in cursor.fetchall()]
                fields = [returning, *fields]
                values = [[new_id, *row] for new_id, row in zip(new_ids, values, strict=True)]
            copy_rows(cursor, table, fields, values)
            return new_ids
        sql = _insert_sql(model, tuple(fields), len(values), returning)
        params = [
            field.get_db_prep_save(value, connection)
            for row in values
            for field, value in zip(fields, row, strict=True)
        ]
        cursor.execute(sql, params)
        return [value for (value,) in cursor.fetchall()] if returning is not None else None


@functools.lru_cache(maxsize=256)
def _insert_sql(
    model: type[models.Model], fields: tuple[Any, ...], rows: int, returning: Any
) -> str:
    """Only model metadata (quoted column and table names) is formatted in."""
    quote = connections[model._default_manager.db].ops.quote_name
    names = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = quote(model._meta.db_table)
    sql = f"INSERT INTO {table} ({names}) VALUES {', '.join([row] * rows)}"  # noqa: S608
    if returning is not None:
        sql += f" RETURNING {quote(returning.column)}"
    return sql


@functools.lru_cache(maxsize=64)
def _upsert_sql(
    model: type[models.Model],
    fields: tuple[Any, ...],
    unique_fields: tuple[str, ...],
    update_fields: tuple[str, ...],
) -> str:
    connection = connections[model._default_manager.db]
    quote = connection.ops.quote_name
    names = ", ".join(quote(f.column) for f in fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    unique = ", ".join(quote(_column(model, name)) for name in unique_fields)
    updates = ", ".join(
        f"{quote(column)} = EXCLUDED.{quote(column)}"
        for column in (_column(model, name) for name in update_fields)
    )
    # Only model metadata (quoted column and table names, column types) is formatted in.
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({names}) "  # noqa: S608
        f"SELECT * FROM unnest({arrays}) ON CONFLICT ({unique}) DO UPDATE SET {updates}"
    )


def _columns_prepared(
    connection: Any, fields: Sequence[Any], values: list[list[Any]]
) -> list[list[Any]]:
    """Each field's values as one list (an array parameter), prepared for the database."""
    return [
        [field.get_db_prep_save(row[index], connection) for row in values]
        for index, field in enumerate(fields)
    ]


def _column(model: type[models.Model], name: str) -> str:
    field: Any = model._meta.get_field(name)
    column: str = field.column
    return column


def _written_fields(model: type[models.Model], objs: Sequence[models.Model]) -> list[Any]:
    """The concrete fields an INSERT gives: a generated primary key and database defaults
    left out (as `bulk_create` leaves them)."""
    first = objs[0]
    fields = []
    for field in model._meta.concrete_fields:
        value = getattr(first, field.attname)
        if field.primary_key and value is None:
            continue
        if isinstance(value, DatabaseDefault):
            continue
        fields.append(field)
    return fields


def _values(fields: Sequence[Any], objs: Sequence[models.Model]) -> list[list[Any]]:
    """Each instance's values as `bulk_create` takes them: after each field's `pre_save`
    (`auto_now` sets the time, a file field stores its file)."""
    values = []
    for obj in objs:
        # a relation set before its object was saved gets that object's id now
        cast(Any, obj)._prepare_related_fields_for_save(operation_name="bulk_insert")
        values.append([field.pre_save(obj, True) for field in fields])
    return values


def copy_rows(
    cursor: Any,
    table: str,
    fields: "Sequence[models.Field[Any, Any]]",
    rows: Sequence[Sequence[Any]],
) -> None:
    """`COPY table (fields) FROM STDIN` in CSV written by the csv module (in C). Every text is
    quoted and NULL is the bare marker `\\N`, so None and "" stay apart; booleans and JSON are
    converted by column, every other value is written as `str()` gives it (text, numbers,
    UUIDs, dates in ISO form), which PostgreSQL reads."""
    convert: list[Callable[[Any], Any] | None] = [_converter(f) for f in fields]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerows(
        [
            _NULL if value is None else (value if how is None else how(value))
            for value, how in zip(row, convert, strict=True)
        ]
        for row in rows
    )
    buffer.seek(0)
    quote = cursor.db.ops.quote_name
    names = ", ".join(quote(f.column) for f in fields)
    cursor.cursor.copy_expert(
        f"COPY {quote(table)} ({names}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
    )


class _NullMarker(int):
    """COPY's NULL: a "number" to the csv module, so written bare, never quoted."""

    def __str__(self) -> str:
        return "\\N"

    __repr__ = __str__


_NULL = _NullMarker()


def _converter(field: Any) -> Callable[[Any], Any] | None:
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        return lambda value: "{}" if value == {} else json.dumps(value, cls=encoder)
    if isinstance(field, models.BooleanField):
        return _boolean
    return None


def _boolean(value: Any) -> str:
    return "t" if value else "f"
