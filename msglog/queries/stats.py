"""Stats cards and the histogram from the daily rollups, and when the
rollups can answer a filtered view instead of counting the log.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import connection
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate

from companies.models import Company
from msglog.models import DailyRollup
from msglog.queries.filters import TABS, MessageFilter
from msglog.rules.statuses import DELIVERED_GROUP, FAILED_GROUP, INTERMEDIATE, Status

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


#: Longer ranges leave the days without messages out of the histogram.
MAX_HISTOGRAM_DAYS = 400


def log_figures(
    filterset: MessageFilter,
    matches: QuerySet,
    *,
    company: Company | None,
    all_companies: bool,
    today: date,
) -> tuple[Cards, list[date], dict[str, list[int]]]:
    """A filtered view's cards and histogram: from the daily rollups when they can answer
    its filters (:meth:`MessageFilter.rollups_can_answer`), else counted from the
    matching messages."""
    start, end = filterset.date_bounds()
    if not filterset.is_valid():
        return summarize([], today)[0], [], {}
    rows: Iterable[dict]
    if filterset.rollups_can_answer():
        rows = fetch_rows(rollup_rows(filterset, start, end, company, all_companies))
    else:
        rows = (
            matches.order_by()
            .annotate(day=TruncDate("created_at"))
            .values("day", "status")
            .annotate(n=Count("id"), seg=Sum("segments"), cred=Sum("credits"))
        )
    cards, days, series = summarize(rows, today)
    if start and end and (end - start).days < MAX_HISTOGRAM_DAYS:
        days, series = fill_days(start, end, days, series)
    return cards, days, series


def rollup_rows(
    filterset: MessageFilter,
    start: date | None,
    end: date | None,
    company: Company | None,
    all_companies: bool,
) -> QuerySet:
    """The rollup rows (day, status, counts) that answer the filters."""
    data = filterset.form.cleaned_data
    if company is None and all_companies and data.get("company"):
        company = data["company"]
    buckets = (
        rollups_for(company) if (company is not None or all_companies) else rollups_for(None).none()
    )
    buckets = buckets.filter(TABS[filterset.current_tab][1])
    if start:
        buckets = buckets.filter(day__gte=start)
    if end:
        buckets = buckets.filter(day__lte=end)
    for name in ("channel", "category", "message_type"):
        if data.get(name):
            buckets = buckets.filter(**{name: data[name]})
    if data.get("status"):
        buckets = buckets.filter(status__in=data["status"])
    return (
        buckets.values("day", "status")
        .annotate(n=Sum("messages"), seg=Sum("segments"), cred=Sum("credits"))
        .order_by()
    )


def fill_days(
    start: date, end: date, days: list[date], series: dict[str, list[int]]
) -> tuple[list[date], dict[str, list[int]]]:
    """Every day of the range, with zeros where nothing was sent (the chart keeps scale)."""
    index = {d: i for i, d in enumerate(days)}
    all_days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    filled = {
        key: [values[index[d]] if d in index else 0 for d in all_days]
        for key, values in series.items()
    }
    return all_days, filled
