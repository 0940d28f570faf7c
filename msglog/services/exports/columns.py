"""An export's columns and how each row's values are formatted (times in the company's
zone and in UTC, texts neutralized against formulas).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from msglog.rules.cells import neutralize
from msglog.rules.kinds import Category, Channel, MessageType, Provider
from msglog.rules.statuses import Status

# Stage timestamps, in the order a message lives through them.
STAGES: list[tuple[str, str]] = [
    ("created_at", "Queued"),
    ("scheduled_for", "Scheduled for"),
    ("sent_at", "Sent"),
    ("delivered_at", "Delivered"),
    ("opened_at", "Opened"),
    ("clicked_at", "Clicked"),
    ("failed_at", "Failed"),
]


# The fields read per row, in the order of the columns built from them.
FIELDS = (
    "public_id",
    "company__name",
    "company__timezone",
    "channel",
    "category",
    "message_type",
    "to_name",
    "to_address",
    "status",
    "status_reason",
    "error_code",
    "provider",
    "template__name",
    "template_version__number",
    "batch__name",
    *(name for name, _ in STAGES),
    "segments",
    "credits",
)


CONTENT_FIELDS = ("subject", "body_text")


COLUMNS: list[str] = [
    "Message ID",
    "Company",
    "Channel",
    "Category",
    "Type",
    "Recipient name",
    "Recipient",
    "Status",
    "Status reason",
    "Error code",
    "Provider",
    "Template",
    "Template version",
    "Batch",
    "Time zone",
    *(heading for _, label in STAGES for heading in (f"{label} (company time)", f"{label} (UTC)")),
    "SMS segments",
    "Credits",
]


CONTENT_COLUMNS = ["Subject", "Text"]


LABELS: dict[str, dict[str, str]] = {
    "channel": dict(Channel.choices),
    "category": dict(Category.choices),
    "message_type": dict(MessageType.choices),
    "status": dict(Status.choices),
    "provider": dict(Provider.choices),
}


def columns(include_content: bool) -> list[str]:
    return COLUMNS + CONTENT_COLUMNS if include_content else COLUMNS


def zone(name: str) -> ZoneInfo | None:
    """The company's time zone (None for UTC, which needs no conversion)."""
    if not name or name == "UTC":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def text_time(moment: datetime) -> str:
    return moment.isoformat(" ", "seconds")[:19]


def excel_time(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)  # Excel has no time zones; the heading says which


def build_rows(
    records: Iterable[tuple], include_content: bool, as_time: Callable[[datetime], Any]
) -> Iterator[list]:
    """One output row per record of FIELDS (+ CONTENT_FIELDS), times rendered by as_time,
    then the channel, status and type codes (KEYS) the totals are counted by."""
    zones: dict[str, ZoneInfo | None] = {}
    channel_label, category_label = LABELS["channel"], LABELS["category"]
    type_label, status_label, provider_label = (
        LABELS["message_type"],
        LABELS["status"],
        LABELS["provider"],
    )
    first_stage = FIELDS.index("created_at")
    for record in records:
        (
            public_id,
            company,
            tz_name,
            channel,
            category,
            message_type,
            to_name,
            to_address,
            status,
            reason,
            error_code,
            provider,
            template,
            version,
            batch,
        ) = record[:first_stage]
        if tz_name not in zones:
            zones[tz_name] = zone(tz_name)
        tz = zones[tz_name]
        row = [
            public_id,
            neutralize(company),
            channel_label.get(channel, ""),
            category_label.get(category, ""),
            type_label.get(message_type, ""),
            neutralize(to_name),
            neutralize(to_address),
            status_label.get(status, status),
            neutralize(reason),
            neutralize(error_code),
            provider_label.get(provider, neutralize(provider)),
            neutralize(template) if template else "",
            version,
            neutralize(batch) if batch else "",
            tz_name or "UTC",
        ]
        for moment in record[first_stage : first_stage + len(STAGES)]:
            if moment is None:
                row += (None, None)
            else:
                row += (as_time(moment.astimezone(tz) if tz else moment), as_time(moment))
        at = first_stage + len(STAGES)
        row += (record[at], record[at + 1])  # segments and credits: numbers stay numbers
        if include_content:
            row += (neutralize(record[at + 2]), neutralize(record[at + 3]))
        row += (channel, status, message_type)  # for the totals, never written
        yield row
