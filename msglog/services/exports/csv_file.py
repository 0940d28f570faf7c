"""The CSV writer: chunks streamed from a server-side cursor (or PostgreSQL's COPY), the
header first, in constant memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

from django.db import connection

from msglog.services.exports import CHUNK_ROWS, PROGRESS_EVERY
from msglog.services.exports.columns import columns
from msglog.services.exports.selection import KEYS, Selection, database_columns, rows


def csv_header(include_content: bool) -> bytes:
    buffer = io.StringIO()
    buffer.write("\ufeff")  # a byte-order mark, so Excel reads UTF-8
    csv.writer(buffer).writerow(columns(include_content))
    return buffer.getvalue().encode()


def csv_chunks(
    selection: Selection, on_progress: Callable[[int], None] | None = None
) -> Iterator[bytes]:
    """The CSV file in chunks; the header comes first, at once, before any query runs."""
    yield csv_header(selection.include_content)
    if connection.vendor == "postgresql":
        yield from _csv_by_copy(selection, on_progress)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    source = rows(selection, as_text=True)
    written = 0
    while True:
        buffer.seek(0)
        buffer.truncate()
        chunk = 0
        for row in source:
            writer.writerow(row[:-KEYS])
            chunk += 1
            if chunk == CHUNK_ROWS:
                break
        if not chunk:
            if on_progress:
                on_progress(written)  # the final count, once more
            return
        written += chunk
        if on_progress and written % PROGRESS_EVERY < CHUNK_ROWS:
            on_progress(written)
        yield buffer.getvalue().encode()


COPY_CHUNK_BYTES = 256 * 1024


def _csv_by_copy(
    selection: Selection, on_progress: Callable[[int], None] | None
) -> Iterator[bytes]:
    """PostgreSQL writes the rows as CSV itself (COPY ... TO STDOUT), streamed in blocks."""
    queryset, names = database_columns(selection, as_text=True)
    sql, params = queryset.values_list(*names).query.sql_with_params()
    pending: list[bytes] = []
    size = lines = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: Django's wrapper has no COPY
        with raw.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
            for block in copy:
                pending.append(bytes(block))
                size += len(block)
                if size >= COPY_CHUNK_BYTES:
                    chunk = b"".join(pending)
                    pending, size = [], 0
                    if on_progress:  # about right: a text may hold a line break
                        before, lines = lines, lines + chunk.count(b"\n")
                        if before // PROGRESS_EVERY != lines // PROGRESS_EVERY:
                            on_progress(lines)
                    yield chunk
        if pending:
            yield b"".join(pending)
        if on_progress:
            on_progress(raw.rowcount)  # the exact count
