"""Daily rollups: message counts per company, day, channel, category, type and status.

They are kept up to date as messages are created and change status, so the stats
cards and the histogram read a few hundred rows instead of counting the log (SPEC §7).
`rebuild()` recomputes them from the log after bulk loads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils.safestring import SafeString, mark_safe

from .models import DailyRollup, Message
from .statuses import DELIVERED_GROUP, FAILED_GROUP, INTERMEDIATE, Status

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
    apply_deltas({k: tuple(v) for k, v in deltas.items()})


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


# --- Reading ------------------------------------------------------------------------------

# Handed to a provider: the denominator of the delivery rate.
ATTEMPTED = frozenset(
    {Status.SENT, Status.FAILED, Status.UNDELIVERED, Status.BOUNCED} | DELIVERED_GROUP
)


@dataclass(frozen=True)
class Cards:
    total: int
    sent_today: int
    failed_today: int
    delivered: int
    sent: int
    segments: int
    credits: int

    @property
    def delivery_rate(self) -> float | None:
        """Delivered ÷ sent, where sent counts every message the provider accepted."""
        return self.delivered / self.sent if self.sent else None

    @property
    def delivery_percent(self) -> float | None:
        rate = self.delivery_rate
        return None if rate is None else round(rate * 100, 1)

    @property
    def band(self) -> str:
        rate = self.delivery_rate
        if rate is None:
            return "none"
        return "good" if rate >= 0.95 else "fair" if rate >= 0.80 else "alarming"


# The histogram's stacks, in drawing order, and the statuses each one gathers.
HISTOGRAM_STACKS: list[tuple[str, str, frozenset[str]]] = [
    ("delivered", "Delivered", frozenset({Status.DELIVERED})),
    ("engaged", "Opened / clicked", frozenset({Status.OPENED, Status.CLICKED})),
    ("in_flight", "Sent / in progress", frozenset(INTERMEDIATE)),
    ("failed", "Failed", frozenset(FAILED_GROUP)),
    ("complained", "Complained", frozenset({Status.COMPLAINED})),
    ("canceled", "Canceled", frozenset({Status.CANCELED})),
]


def fetch_rows(queryset: QuerySet) -> list[dict]:
    """The rows of a values() queryset, read without the ORM's per-row conversions.

    A few months of a company's (day, status) groups are a thousand rows; the database
    driver already gives dates and integers, so Django's converters only cost time.
    """
    if connection.vendor != "postgresql":  # SQLite gives dates as text: let Django convert
        return list(queryset)
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def summarize(rows: Iterable[dict], today: date):
    """Cards and daily stacks from rows of {day, status, n, seg, cred}."""
    total = sent_today = failed_today = delivered = sent = segments = credits = 0
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    stack_of = {s: key for key, _, statuses in HISTOGRAM_STACKS for s in statuses}
    for row in rows:
        n, status, day = row["n"] or 0, row["status"], row["day"]
        total += n
        segments += row["seg"] or 0
        credits += row["cred"] or 0
        if status in ATTEMPTED:
            sent += n
            if day == today:
                sent_today += n
        if status in DELIVERED_GROUP:
            delivered += n
        if status in FAILED_GROUP and day == today:
            failed_today += n
        per_day[day][stack_of.get(status, "in_flight")] += n
    days = sorted(per_day)
    series = {key: [per_day[d][key] for d in days] for key, _, _ in HISTOGRAM_STACKS}
    cards = Cards(total, sent_today, failed_today, delivered, sent, segments, credits)
    return cards, days, series


def rollups_for(company) -> QuerySet:
    rollups = DailyRollup.objects.all()
    return rollups.filter(company=company) if company is not None else rollups


def daily_table_html(days: list[date], series: dict[str, list[int]]) -> SafeString:
    """The histogram as a table (what a reader without JavaScript gets), rendered in one
    pass of plain strings: a few months of days times every stack is thousands of cells,
    and every cell is an integer."""
    head = "".join(f"<th>{escape(str(label))}</th>" for _, label, _ in HISTOGRAM_STACKS)
    columns = [series.get(key, ()) for key, _, _ in HISTOGRAM_STACKS]
    body = "".join(
        f"<tr><td>{day:%b} {day.day}</td>"
        + "".join(f'<td class="num">{int(column[i])}</td>' for column in columns)
        + "</tr>"
        for i, day in enumerate(days)
    )
    return mark_safe(  # noqa: S308 — labels are escaped, every other cell is an int
        f'<table class="table compact"><thead><tr><th>Day</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
