"""Daily rollups: message counts per company, day, channel, category, type and status.

They are kept up to date as messages are created and change status, so the stats
cards and the histogram read a few hundred rows instead of counting the log.
`rebuild()` recomputes them from the log after bulk loads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime

from django.db import connection, transaction

from msglog.models import Message

Bucket = tuple[int, date, str, str, str, str]  # company, day, channel, category, type, status

UPSERT_SQL = """
INSERT INTO msglog_dailyrollup
    (company_id, day, channel, category, message_type, status, messages, segments, credits)
VALUES {values}
ON CONFLICT (company_id, day, channel, category, message_type, status) DO UPDATE SET
    messages = msglog_dailyrollup.messages + excluded.messages,
    segments = msglog_dailyrollup.segments + excluded.segments,
    credits = msglog_dailyrollup.credits + excluded.credits
"""


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


#: The Message fields `bucket` reads, and those `add_move` reads (a caller that loads
#: messages with only() loads these, or each read is one more query).
BUCKET_FIELDS = ("company_id", "created_at", "channel", "category", "message_type", "status")
MOVE_FIELDS = (*BUCKET_FIELDS, "segments", "credits")


def bucket(message: Message, status: str | None = None) -> Bucket:
    return (
        message.company_id,
        day_of(message.created_at),
        message.channel,
        message.category,
        message.message_type,
        status or message.status,
    )


def apply_deltas(deltas: dict[Bucket, tuple[int, int, int]]) -> None:
    """Add (messages, segments, credits) to each bucket, creating buckets as needed."""
    rows = [(*key, *counts) for key, counts in sorted(deltas.items()) if any(counts)]
    if not rows:
        return
    placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    params = [value for row in rows for value in row]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(UPSERT_SQL.format(values=placeholders), params)


def count_created(messages: Iterable[Message]) -> None:
    """Count newly created messages in their buckets."""
    deltas: dict[Bucket, list[int]] = defaultdict(lambda: [0, 0, 0])
    for message in messages:
        d = deltas[bucket(message)]
        d[0] += 1
        d[1] += message.segments
        d[2] += message.credits
    apply_deltas({k: (n, segments, credits) for k, (n, segments, credits) in deltas.items()})


def add_move(
    deltas: dict[Bucket, list[int]],
    message: Message,
    new_status: str,
    old_status: str | None = None,
) -> None:
    """Count a status change into `deltas`: the message leaves its status's bucket (its
    current one, or `old_status` where the message already holds the new one) for the new
    one (apply the collected deltas with `apply_deltas`)."""
    for key, sign in ((bucket(message, old_status), -1), (bucket(message, new_status), 1)):
        delta = deltas.setdefault(key, [0, 0, 0])
        delta[0] += sign
        delta[1] += sign * message.segments
        delta[2] += sign * message.credits


def rebuild(company_ids: Iterable[int] | None = None) -> None:
    """Recompute rollups from the log (after bulk loads or imports)."""
    where = ""
    params: list = []
    if company_ids is not None:
        ids = list(company_ids)
        if not ids:
            return
        where = f"WHERE company_id IN ({', '.join(['%s'] * len(ids))})"
        params = ids
    day = (
        "DATE(created_at AT TIME ZONE 'UTC')"
        if connection.vendor == "postgresql"
        else "DATE(created_at)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM msglog_dailyrollup {where}", params)  # noqa: S608
        cursor.execute(
            f"""
            INSERT INTO msglog_dailyrollup
                (company_id, day, channel, category, message_type, status, messages,
                 segments, credits)
            SELECT company_id, {day}, channel, category, message_type, status, COUNT(*),
                   COALESCE(SUM(segments), 0), COALESCE(SUM(credits), 0)
            FROM msglog_message {where}
            GROUP BY company_id, {day}, channel, category, message_type, status
            """,  # noqa: S608 — only our own column names and placeholders are interpolated
            params,
        )
