"""Days and time zones: which moments a day covers, and a company's zone.

The Logs and Failed pages, exports and the audit log select whole days as a `created_at`
range (``>= start_of_day(first)`` and ``< end_of_day(last)``), so the (company,
created_at) indexes serve every date filter.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class HasTimeZone(Protocol):
    timezone: str


def zone_named(name: str) -> ZoneInfo:
    """The zone of an IANA name; UTC for an empty or unknown one."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def company_zone(company: HasTimeZone) -> ZoneInfo:
    """The company's time zone (operators see each message in its company's)."""
    return zone_named(company.timezone)


def start_of_day(day: date) -> datetime:
    """The first moment of `day` (UTC), for a `created_at >= start` range."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def end_of_day(day: date) -> datetime:
    """The first moment after `day` (UTC), for a `created_at < end` range."""
    if day >= date.max:  # nothing comes after the calendar's last day
        return datetime.max.replace(tzinfo=UTC)
    return start_of_day(day + timedelta(days=1))


def period_range(period: str, today: date) -> tuple[date | None, date | None]:
    """The first and last day a preset period covers (UTC days)."""
    return {
        "today": (today, today),
        "7d": (today - timedelta(days=6), today),
        "30d": (today - timedelta(days=29), today),
    }.get(period, (None, None))
