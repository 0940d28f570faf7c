"""What the retention and erasure tests look through: every table of the database."""

from __future__ import annotations

from django.db import connection


def tables_mentioning(needle: str) -> dict[str, int]:
    """{table: rows} for every table with a row whose text contains `needle` (any column)."""
    found = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            quoted = connection.ops.quote_name(table)
            cursor.execute(
                f"SELECT count(*) FROM {quoted} t WHERE t::text ILIKE %s",
                [f"%{needle}%"],
            )
            (rows,) = cursor.fetchone()
            if rows:
                found[table] = rows
    return found
