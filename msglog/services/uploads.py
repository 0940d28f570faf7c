"""A batch's recipients before it exists: an uploaded CSV (or a choice of contacts) checked
row by row — invalid addresses, duplicates, suppressed ones — and kept as a
:class:`~msglog.models.BatchUpload` with its :class:`UploadCheck` until the admin
confirms it (msglog.services.batches.confirm).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from companies.models import Company
from msglog.models import BatchUpload
from msglog.queries.suppressions import suppressions_for
from msglog.rules.addresses import normalize_address
from msglog.rules.kinds import Channel
from msglog.services.bulk_writes import gc_paused
from templates_app.models import MessageTemplateVersion

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Problems listed row by row in the report (all are counted).
REPORT_EXAMPLES = 50


ADDRESS_COLUMNS: dict[str, tuple[str, ...]] = {
    Channel.SMS: ("phone", "mobile", "phone_number", "number", "to", "address"),
    Channel.EMAIL: ("email", "email_address", "to", "address"),
}


NAME_COLUMNS = ("name", "full_name")


@dataclass
class Problem:
    """One recipient row that will not be sent, and why."""

    row: int  # 1-based line number in the file (the header is line 1)
    value: str
    why: str


@dataclass
class UploadCheck:
    """What checking an upload found: how many rows will be sent and what is left out."""

    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    suppressed: int = 0
    examples: list[Problem] = field(default_factory=list)
    error: str = ""  # the file as a whole could not be used

    def note(self, kind: str, problem: Problem) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < REPORT_EXAMPLES:
            self.examples.append(problem)

    @property
    def left_out(self) -> int:
        return self.invalid + self.duplicates + self.suppressed

    def as_json(self) -> dict:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "examples": [[p.row, p.value, p.why] for p in self.examples],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict) -> UploadCheck:
        examples = [Problem(*item) for item in data.get("examples", [])]
        fields = {k: data.get(k, 0) for k in ("rows", "valid", "invalid", "duplicates")}
        return cls(
            **fields,
            suppressed=data.get("suppressed", 0),
            examples=examples,
            error=data.get("error", ""),
        )


Row = list  # [address, name, contact id or None, {placeholder: value}]


def read_csv(data: bytes | str, channel: str) -> tuple[list[tuple[int, str, str, dict]], str]:
    """The file's recipient rows as (line, address, name, other columns), or an error."""
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lower().replace(" ", "_") for h in next(reader, [])]
    wanted = ADDRESS_COLUMNS[channel]
    column = next((header.index(name) for name in wanted if name in header), None)
    if column is None:
        what = "phone" if channel == Channel.SMS else "email"
        return [], (
            f"No {what} column: the first line must name the columns, one of them "
            f"“{what}” (also accepted: {', '.join(wanted[1:])})."
        )
    name_column = next((header.index(n) for n in NAME_COLUMNS if n in header), None)
    extra = [
        (i, h)
        for i, h in enumerate(header)
        if h and i not in (column, name_column) and h.isidentifier()
    ]
    rows = []
    for line, values in enumerate(reader, start=2):
        if not "".join(values).strip():  # a blank line, or only blank cells
            continue
        cell = values[column].strip() if column < len(values) else ""
        name = (
            values[name_column].strip()
            if name_column is not None and name_column < len(values)
            else ""
        )
        context = {h: values[i].strip() for i, h in extra if i < len(values)}
        rows.append((line, cell, name, context))
    return rows, ""


def check_rows(
    company: Company, channel: str, rows: Iterable[tuple[int, str, str, dict]]
) -> tuple[list[Row], UploadCheck]:
    """Validate recipient rows before anything is sent: the ones to send, and the report.

    Addresses are normalized with the very function sends use; each address is sent to
    once (later rows with the same address are duplicates); suppressed addresses are
    left out, as a send would record them `suppressed`.
    """

    report = UploadCheck()
    seen: dict[str, int] = {}
    keep: list[tuple[int, str, str, dict]] = []
    # Each distinct value is read once: parsing a phone number costs ~20 µs.
    normalized: dict[str, str | None] = {"": None}
    region = company.default_region
    for line, raw, name, context in rows:
        report.rows += 1
        if raw in normalized:
            address = normalized[raw]
        else:
            address = normalized[raw] = normalize_address(channel, raw, region)
        if address is None:
            what = "phone number" if channel == Channel.SMS else "email address"
            report.note("invalid", Problem(line, raw, f"Not a valid {what}."))
        elif address in seen:
            report.note("duplicates", Problem(line, raw, f"Same address as line {seen[address]}."))
        else:
            seen[address] = line
            keep.append((line, address, name, context))
    suppressed = suppressions_for(company, channel, seen)
    send: list[Row] = []
    for line, address, name, context in keep:
        if address in suppressed:
            entry = suppressed[address]
            report.note(
                "suppressed",
                Problem(line, address, f"On the suppression list: {entry.get_reason_display()}."),
            )
        else:
            send.append([address, name, None, context])
    report.valid = len(send)
    return send, report


def upload_csv(
    company: Company,
    *,
    name: str,
    template_version: MessageTemplateVersion,
    data: bytes | str,
    filename: str = "",
    scheduled_for: datetime | None = None,
    uploaded_by: User | None = None,
) -> BatchUpload:
    """Check an uploaded CSV and keep it, with its report, until the admin confirms."""

    channel = template_version.template.channel
    with gc_paused():  # 100,000 rows are half a million live objects: nothing to collect
        parsed, error = read_csv(data, channel)
        rows, report = check_rows(company, channel, parsed)
    report.error = error
    return BatchUpload.objects.create(
        company=company,
        name=name,
        filename=filename[:200],
        template_version=template_version,
        scheduled_for=scheduled_for,
        rows=rows,
        report=report.as_json(),
        uploaded_by=uploaded_by,
    )


def upload_contacts(
    company: Company,
    *,
    name: str,
    template_version: MessageTemplateVersion,
    contacts: QuerySet,
    scheduled_for: datetime | None = None,
    uploaded_by: User | None = None,
) -> BatchUpload:
    """The chosen contacts as recipients, checked as an upload would be."""
    channel = template_version.template.channel
    field_name = "phone" if channel == Channel.SMS else "email"
    chosen = list(contacts.filter(company=company).order_by("name", "pk"))
    parsed: list[tuple[int, str, str, dict]] = [
        (i, getattr(c, field_name), c.name, {}) for i, c in enumerate(chosen, start=1)
    ]
    rows, report = check_rows(company, channel, parsed)

    # Each row keeps its contact (the first with that address), so the contact's
    # opt-outs apply at the send and the log links to the contact.
    contact_of = {
        normalize_address(channel, getattr(c, field_name) or "", company.default_region): c.pk
        for c in reversed(chosen)
    }
    for row in rows:
        row[2] = contact_of.get(row[0])
    return BatchUpload.objects.create(
        company=company,
        name=name,
        template_version=template_version,
        scheduled_for=scheduled_for,
        rows=rows,
        report=report.as_json(),
        uploaded_by=uploaded_by,
    )
