"""The Failed page's figures: failures by reason, by provider and by day.

Two GROUP BY queries over the log answer the whole page, however many messages there
are: one over the failures of the window (they are few, and the (company, status,
created_at) index finds them), one counting every message of the window per UTC day
and provider, so each day's failure *rate* can be compared with that provider's usual
rate. An outage of one provider is a day whose rate stands far above its median.
Operators looking at every company get a third, per-company count of the failures.

Callers pass a queryset already limited to the request's company (or to every company,
for operators), so this module never decides who sees what.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from django import forms
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Left, TruncDate
from django.urls import reverse
from django.utils import timezone

from msglog.models import Message
from msglog.rules.days import end_of_day, start_of_day
from msglog.rules.errors import explain
from msglog.rules.kinds import Channel, Provider
from msglog.rules.statuses import FAILED_GROUP, MEANING, Status

# A day is called out when its failure rate is at least this far above the provider's
# median (in points) *and* at least double it, with enough failures not to be noise, and
# only when there are enough days to know what "usual" is.
OUTAGE_MIN_JUMP = 0.15
OUTAGE_MIN_FAILED = 5
OUTAGE_MIN_DAYS = 3

PROVIDER_NAMES = {**dict(Provider.choices), "": "No provider (never sent)"}
LABEL_LENGTH = 200


def provider_name(provider: str) -> str:
    """How a provider key reads on the page; the blank one is for never-sent messages."""
    return PROVIDER_NAMES.get(provider, provider.replace("_", " ").title())


def percent(rate: float) -> str:
    """'38%'; under 10% one decimal when it matters, so a 0.4% baseline does not read 0%."""
    if 0 < rate < 0.1:
        return f"{rate * 100:.1f}".removesuffix(".0") + "%"
    return f"{rate:.0%}"


@dataclass(frozen=True)
class Window:
    """The UTC days the page looks at (both ends included) and an optional channel."""

    date_from: date
    date_to: date
    channel: str = ""
    period: str = "custom"

    @property
    def start(self) -> datetime:
        return start_of_day(self.date_from)

    @property
    def end(self) -> datetime:
        return end_of_day(self.date_to)

    def days(self) -> list[date]:
        count = (self.date_to - self.date_from).days + 1
        return [self.date_from + timedelta(days=i) for i in range(count)]

    def logs_url(self, day: date | None = None, /, **params: str) -> str:
        """The Logs page showing exactly these failures (one day of the window if given)."""
        query = {
            "tab": "failed",
            "period": "custom",
            "date_from": (day or self.date_from).isoformat(),
            "date_to": (day or self.date_to).isoformat(),
        }
        if self.channel:
            query["channel"] = self.channel
        query.update({key: value for key, value in params.items() if value})
        return f"{reverse('logs')}?{urlencode(query)}"

    def filter(self, messages: QuerySet) -> QuerySet:
        # A half-open range on the raw column, so the (company, …, created_at) indexes apply.
        messages = messages.filter(created_at__gte=self.start, created_at__lt=self.end)
        return messages.filter(channel=self.channel) if self.channel else messages


@dataclass
class Reason:
    """Failures sharing a channel, status and error code."""

    channel: str
    status: str
    error_code: str
    label: str
    count: int
    url: str
    by_provider: list[tuple[str, int, str]] = field(default_factory=list)  # name, count, url

    @property
    def channel_label(self) -> str:
        return Channel(self.channel).label if self.channel in Channel.values else self.channel

    @property
    def status_label(self) -> str:
        return Status(self.status).label if self.status in Status.values else self.status


@dataclass
class Cell:
    """One provider on one day."""

    total: int = 0
    failed: int = 0
    url: str = ""
    outlier: bool = False

    @property
    def rate(self) -> float:
        return self.failed / self.total if self.total else 0.0

    @property
    def rate_text(self) -> str:
        return percent(self.rate)


@dataclass
class ProviderSummary:
    provider: str
    name: str
    total: int
    failed: int
    usual_rate: float | None
    url: str

    @property
    def rate(self) -> float:
        return self.failed / self.total if self.total else 0.0

    @property
    def rate_text(self) -> str:
        return percent(self.rate)

    @property
    def usual_text(self) -> str:
        return percent(self.usual_rate) if self.usual_rate is not None else "—"


@dataclass(frozen=True)
class Outage:
    """A day on which one provider failed far more often than it usually does."""

    provider: str
    day: date
    rate: float
    usual: float
    failed: int
    total: int
    url: str

    @property
    def sentence(self) -> str:
        return (
            f"{provider_name(self.provider)}: {percent(self.rate)} failed on "
            f"{self.day:%b} {self.day.day} (usually {percent(self.usual)})"
        )


@dataclass
class DayRow:
    day: date
    cells: list[Cell]

    @property
    def failed(self) -> int:
        return sum(cell.failed for cell in self.cells)


@dataclass
class FailureReport:
    window: Window
    total_messages: int
    total_failed: int
    reasons: list[Reason]
    providers: list[ProviderSummary]
    days: list[DayRow]
    outages: list[Outage]
    by_company: list[tuple[str, int]] = field(default_factory=list)

    @property
    def rate_text(self) -> str:
        return percent(self.total_failed / self.total_messages) if self.total_messages else "—"


def explained_title(channel: str, status: str, code: str, text: str) -> str:
    """The plain-words title of a failure; '' when the errors table does not know it."""
    sample = Message(channel=channel, status=status, error_code=code, error_message=text)
    answer = explain(sample)
    return answer.title if answer is not None and answer.known else ""


def failures_by_reason(messages: QuerySet, window: Window) -> list[Reason]:
    """Failures of the window by channel, status and error code, each split by provider.

    The label is the plain-words explanation when one exists, else the most common
    error message of the group, else the status's meaning.
    """
    rows = (
        window.filter(messages)
        .filter(status__in=FAILED_GROUP)
        .annotate(sample=Left("error_message", LABEL_LENGTH))
        .values("channel", "status", "error_code", "provider", "sample")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: Counter[tuple[str, str, str]] = Counter()
    providers: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    samples: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for row in rows:
        key = (row["channel"], row["status"], row["error_code"])
        counts[key] += row["n"]
        providers[key][row["provider"]] += row["n"]
        if row["sample"]:
            samples[key][row["sample"]] += row["n"]

    reasons = []
    for key, count in counts.most_common():
        channel, status, code = key
        common = samples[key].most_common(1)[0][0] if samples[key] else ""
        label = explained_title(channel, status, code, common) or common
        if not label and status in Status.values:
            label = MEANING[Status(status)]
        params = {"status": status, "error_code": code, "channel": channel}
        reasons.append(
            Reason(
                channel=channel,
                status=status,
                error_code=code,
                label=label,
                count=count,
                url=window.logs_url(**params),
                by_provider=[
                    (provider_name(p), n, window.logs_url(provider=p, **params))
                    for p, n in providers[key].most_common()
                ],
            )
        )
    return reasons


def daily_by_provider(messages: QuerySet, window: Window) -> dict[tuple[date, str], Cell]:
    """Messages and failures per UTC day and provider over the window."""
    rows = (
        window.filter(messages)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "provider")
        .annotate(total=Count("id"), failed=Count("id", filter=Q(status__in=FAILED_GROUP)))
        .order_by()
    )
    return {
        (row["day"], row["provider"]): Cell(
            total=row["total"],
            failed=row["failed"],
            url=window.logs_url(row["day"], provider=row["provider"]),
        )
        for row in rows
    }


def find_outages(cells: dict[tuple[date, str], Cell]) -> tuple[list[Outage], dict[str, float]]:
    """Days whose failure rate stands far above the provider's median day; marks their cells.

    Returns the outages, worst first, and each provider's usual (median) rate.
    """
    by_provider: dict[str, list[tuple[date, Cell]]] = defaultdict(list)
    for (day, provider), cell in cells.items():
        if cell.total:
            by_provider[provider].append((day, cell))
    usual_rates: dict[str, float] = {}
    outages = []
    for provider, days in by_provider.items():
        usual = statistics.median(cell.rate for _, cell in days)
        usual_rates[provider] = usual
        if len(days) < OUTAGE_MIN_DAYS:
            continue
        for day, cell in days:
            jump = cell.rate - usual
            if cell.failed >= OUTAGE_MIN_FAILED and jump >= max(OUTAGE_MIN_JUMP, usual):
                cell.outlier = True
                outages.append(
                    Outage(provider, day, cell.rate, usual, cell.failed, cell.total, cell.url)
                )
    outages.sort(key=lambda o: (-(o.rate - o.usual), o.day, o.provider))
    return outages, usual_rates


def failures_by_company(messages: QuerySet, window: Window) -> list[tuple[str, int]]:
    """Failures per company, for operators looking at every company."""
    rows = (
        window.filter(messages)
        .filter(status__in=FAILED_GROUP)
        .values("company__name")
        .annotate(n=Count("id"))
        .order_by("-n", "company__name")
    )
    return [(row["company__name"], row["n"]) for row in rows]


def failure_report(
    messages: QuerySet, window: Window, *, by_company: bool = False
) -> FailureReport:
    """Everything the Failed page shows for `messages` (already company-filtered)."""
    reasons = failures_by_reason(messages, window)
    cells = daily_by_provider(messages, window)
    outages, usual_rates = find_outages(cells)

    totals: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for (_, provider), cell in cells.items():
        totals[provider] += cell.total
        failed[provider] += cell.failed
    # Providers with failures first, then by traffic, so the troubled ones lead the table.
    order = sorted(totals, key=lambda p: (-failed[p], -totals[p], p))
    providers = [
        ProviderSummary(
            provider=p,
            name=provider_name(p),
            total=totals[p],
            failed=failed[p],
            usual_rate=usual_rates.get(p),
            url=window.logs_url(provider=p),
        )
        for p in order
    ]
    days = [
        DayRow(day=day, cells=[cells.get((day, p), Cell()) for p in order])
        for day in reversed(window.days())
    ]
    return FailureReport(
        window=window,
        total_messages=sum(totals.values()),
        total_failed=sum(failed.values()),
        reasons=reasons,
        providers=providers,
        days=days,
        outages=outages,
        by_company=failures_by_company(messages, window) if by_company else [],
    )


PERIODS = [("today", "Today"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("custom", "Custom")]


DEFAULT_PERIOD = "7d"


PRESET_DAYS = {"today": 1, "7d": 7, "30d": 30}


# One row per day: beyond a year the table stops being readable and the query stops being cheap.
MAX_DAYS = 366


def utc_today() -> date:
    return timezone.now().astimezone(UTC).date()


class FailedFilterForm(forms.Form):
    period = forms.ChoiceField(choices=PERIODS, required=False, label="Period")
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    channel = forms.ChoiceField(
        choices=[("", "Any channel"), *Channel.choices], required=False, label="Channel"
    )

    def __init__(self, *args, today: date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today

    def clean(self):
        super().clean()
        data = self.cleaned_data  # what Form.clean returns
        period = data.get("period") or (
            "custom" if data.get("date_from") or data.get("date_to") else DEFAULT_PERIOD
        )
        data["period"] = period
        if period != "custom":
            return data
        date_to = data.get("date_to") or self.today
        date_from = data.get("date_from") or date_to - timedelta(days=PRESET_DAYS["7d"] - 1)
        if date_from > date_to:
            raise forms.ValidationError("The start date is after the end date.")
        if (date_to - date_from).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        data["date_from"], data["date_to"] = date_from, date_to
        return data

    def window(self) -> Window:
        """The days and channel asked for; the default week when the input is not valid."""
        data = self.cleaned_data if self.is_valid() else {"period": DEFAULT_PERIOD}
        period = data["period"]
        channel = data.get("channel", "")
        if period == "custom":
            return Window(data["date_from"], data["date_to"], channel, period)
        days = PRESET_DAYS[period]
        return Window(self.today - timedelta(days=days - 1), self.today, channel, period)
