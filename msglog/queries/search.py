"""Substring search over a message's recipient name, address and subject.

The SQL expression is the one the trigram index of migration 0003 indexes, so on
PostgreSQL `LIKE '%jane%'` is answered from that index instead of a scan.
"""

from __future__ import annotations

from django.db.models import F, Func, QuerySet, TextField


class SearchText(Func):
    """UPPER((to_name || ' ' || to_address || ' ' || subject)::text)"""

    template = "UPPER((%(expressions)s)::text)"
    arg_joiner = " || ' ' || "
    output_field = TextField()

    def __init__(self) -> None:
        super().__init__(F("to_name"), F("to_address"), F("subject"))

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler, connection, template="UPPER(%(expressions)s)", **extra_context
        )


def search_messages(queryset: QuerySet, text: str) -> QuerySet:
    """Messages whose recipient name, address or subject contains `text` (any case)."""
    return queryset.alias(search_text=SearchText()).filter(search_text__contains=text.upper())
