"""Keyset (seek) pagination on (created_at, id) and a capped count.

Page N costs the same as page 1: a page is "the 50 rows after this (created_at, id)",
answered by the (company, created_at, id) index, never by OFFSET. The cursor is opaque
in the URL (`?cursor=...`) so a copied link opens the same page.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django_tables2.rows import BoundRows

COUNT_CAP = 10_000


def capped_count(queryset: QuerySet, cap: int | None = None) -> tuple[int, bool]:
    """How many rows match, counting at most `cap` + 1: (count, more_than_cap)."""
    cap = cap or COUNT_CAP
    n = queryset.order_by()[: cap + 1].count()
    return min(n, cap), n > cap


def encode_cursor(direction: str, created_at: datetime, pk: int) -> str:
    raw = f"{direction}|{created_at.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, datetime, int] | None:
    """(direction, created_at, id), or None for anything that is not a cursor of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, moment, pk = raw.split("|")
        parsed = datetime.fromisoformat(moment)
        if direction not in {"after", "before"} or parsed.tzinfo is None:
            return None
        return direction, parsed, int(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


@dataclass
class KeysetPage:
    object_list: BoundRows
    number: str | int  # the cursor as given (django-tables2's page number type allows an int)
    next_cursor: str | None
    previous_cursor: str | None

    def has_next(self) -> bool:
        return self.next_cursor is not None

    def has_previous(self) -> bool:
        return self.previous_cursor is not None

    def has_other_pages(self) -> bool:
        return self.has_next() or self.has_previous()


class KeysetPaginator:
    """A django-tables2 paginator over a queryset ordered by created_at (either way), id."""

    is_keyset = True

    def __init__(self, rows: BoundRows, per_page: int, descending: bool = True, **kwargs):
        self.rows = rows
        self.queryset: QuerySet = rows.data.data
        self.per_page = per_page
        self.descending = descending

    def page(self, cursor: str | int | None) -> KeysetPage:
        decoded = decode_cursor(cursor) if isinstance(cursor, str) and cursor else None
        direction = decoded[0] if decoded else "after"
        order: tuple[str, ...] = ("-created_at", "-id") if self.descending else ("created_at", "id")
        backwards = direction == "before"
        if backwards:  # walk the other way, then turn the page back around
            order = tuple(f[1:] if f.startswith("-") else f"-{f}" for f in order)
        queryset = self.queryset.order_by(*order)
        if decoded:
            _, created_at, pk = decoded
            older = self.descending != backwards
            # A range on created_at the index can seek to, minus the ties already shown;
            # an OR of the two would make the planner give up the ordered index scan.
            if older:
                seek = Q(created_at__lte=created_at) & ~Q(created_at=created_at, id__gte=pk)
            else:
                seek = Q(created_at__gte=created_at) & ~Q(created_at=created_at, id__lte=pk)
            queryset = queryset.filter(seek)
        records = list(queryset[: self.per_page + 1])
        more = len(records) > self.per_page
        records = records[: self.per_page]
        if backwards:
            records.reverse()
        has_next = more if not backwards else True
        has_previous = bool(decoded) if not backwards else more
        first, last = (records[0], records[-1]) if records else (None, None)
        return KeysetPage(
            object_list=BoundRows(data=records, table=self.rows.table),
            number=cursor or "",
            next_cursor=encode_cursor("after", last.created_at, last.pk)
            if has_next and last
            else None,
            previous_cursor=encode_cursor("before", first.created_at, first.pk)
            if has_previous and first
            else None,
        )
