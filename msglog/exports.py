"""Exports for accountants: CSV and Excel of exactly the rows a view's filters select.

The rules live here, whatever starts an export (the Export menu, a background job, the
benchmark):

- Which rows: :func:`select` rebuilds the view's queryset from its query string with the
  view's own filter set (Logs, Failed, a contact's page, a batch's page), for one company.
  Every page of the view, not just the visible one, newest first.
- Which columns: every column the tables can show plus the ones an accountant reconciles
  with (:data:`COLUMNS`): message id, channel, category, type, recipient, status and its
  reason, error code, provider, template and version, batch, every stage's time in the
  company's time zone and in UTC, SMS segments, credits, company. Subject and text only
  for roles that may read content.
- Safety: every text a person or provider could have typed is neutralized against
  spreadsheet formulas (:func:`neutralize`, the OWASP "CSV injection" cases); numbers are
  written as numbers.
- How: CSV streams in chunks from a server-side cursor (constant memory, the header
  within a second); Excel uses openpyxl's write-only mode with a second sheet of totals.
  Above a threshold the export becomes a background :class:`~msglog.models.Export` job.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from zipfile import ZIP_DEFLATED, ZipFile
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import connection
from django.db.models import Case, DateTimeField, F, Func, QuerySet, TextField, Value, When
from django.db.models.functions import Coalesce, NullIf
from django.http import QueryDict
from django.utils import timezone
from django.utils.text import slugify
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.writer.excel import ExcelWriter
from openpyxl.xml.constants import SHEET_MAIN_NS
from openpyxl.xml.functions import xmlfile

from companies import audit
from companies.models import Company, Contact

from . import rollups
from .filters import DEFAULT_PERIOD, MessageFilter
from .kinds import Category, Channel, MessageType, Provider
from .models import Batch, Export, Message
from .statuses import DELIVERED_GROUP, Status

logger = logging.getLogger(__name__)

FORMATS: dict[str, tuple[str, str]] = {  # format: (extension, content type)
    "csv": ("csv", "text/csv; charset=utf-8"),
    "xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
# Rows fetched per round trip of the server-side cursor, and per CSV chunk sent.
CHUNK_ROWS = 2_000
PROGRESS_EVERY = 10_000


class ExportError(Exception):
    """A request that cannot be exported; the message says why, in the user's words."""


# --- Neutralizing spreadsheet formulas -----------------------------------------------------

# OWASP "CSV Injection": a cell a spreadsheet may read as a formula or a DDE call starts
# with one of these; full-width forms are folded to them by some spreadsheets.
FORMULA_TRIGGERS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
# A number written as text ("-12", "+14155550123") is data, not a formula: kept as it is.
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?")
# The same two tests as PostgreSQL regular expressions, for rows the database formats.
SQL_FORMULA = "^ *[" + "".join(sorted(FORMULA_TRIGGERS - {"-"})) + "-]"
SQL_PLAIN_NUMBER = "^[+-]?[0-9]+([.,][0-9]+)?$"
FIRST_CHARACTERS = sorted(FORMULA_TRIGGERS | {" "})


def neutralize(value: str) -> str:
    """A text cell no spreadsheet will evaluate: a leading quote before a formula trigger."""
    if not value:
        return value
    first = value[0]
    if first == " ":  # spreadsheets skip leading spaces before they look for a formula
        first = value.lstrip(" ")[:1]
    if first in FORMULA_TRIGGERS and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


# --- Columns ------------------------------------------------------------------------------

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


# --- Which rows ---------------------------------------------------------------------------


@dataclass
class Selection:
    """What one export covers: a view's filters applied for one company (or every one)."""

    company: Company | None
    all_companies: bool
    source: str
    source_id: int | None
    query: QueryDict
    include_content: bool
    queryset: QuerySet = field(repr=False, default=None)
    filters: dict[str, Any] = field(default_factory=dict)
    frozen_query: str = ""  # the query with relative periods turned into dates


SOURCES = ("logs", "failed", "contact", "batch")


def select(
    *,
    company: Company | None,
    all_companies: bool,
    source: str,
    source_id: str | int | None,
    query: QueryDict | str,
    include_content: bool,
    today: date | None = None,
) -> Selection:
    """The messages a view shows for `query`, or ExportError saying why there are none."""
    if source not in SOURCES:
        raise ExportError("Exports are made from the Logs, Failed, contact and batch pages.")
    if isinstance(query, str):
        query = QueryDict(query)
    if company is None and not all_companies:
        raise ExportError("You are not a member of any company.")
    if "company" in query and not all_companies:
        raise ExportError("You can only export your own company's messages.")
    today = today or timezone.now().date()
    messages = Message.objects.all()
    if company is not None:
        messages = messages.filter(company=company)
    data = query.copy()
    default_period = DEFAULT_PERIOD
    wanted_id = None
    if source in {"contact", "batch"}:
        wanted_id = _as_id(source_id)
        if wanted_id is None:
            raise ExportError(f"Which {source} to export is missing.")
        owners = (Contact if source == "contact" else Batch).objects.all()
        if company is not None:
            owners = owners.filter(company=company)
        owner = owners.filter(pk=wanted_id).first()
        if owner is None:
            raise ExportError(f"That {source} is not one of your company's.")
        messages = messages.filter(**{source: owner})
        default_period = "all"
    elif source == "failed":
        data = failed_view_query(query, today)
    filterset = MessageFilter(
        data,
        queryset=messages,
        company=company,
        all_companies=all_companies,
        today=today,
        default_period=default_period,
    )
    if not filterset.is_valid():
        problems = "; ".join(
            f"{name}: {' '.join(errors)}" if name != "__all__" else " ".join(errors)
            for name, errors in filterset.form.errors.items()
        )
        raise ExportError(f"These filters could not be used, so nothing was exported: {problems}")
    queryset = filterset.qs.order_by("-created_at", "-id")
    return Selection(
        company=company,
        all_companies=all_companies,
        source=source,
        source_id=wanted_id,
        query=query,
        include_content=include_content,
        queryset=queryset,
        filters=describe_filters(filterset),
        frozen_query=freeze_period(data, filterset).urlencode(),
    )


def _as_id(value: str | int | None) -> int | None:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def failed_view_query(query: QueryDict, today: date) -> QueryDict:
    """The Failed page's window as the Logs filters that list exactly its failures."""
    from .views.failed import FailedFilterForm

    form = FailedFilterForm(query or None, today=today)
    if form.is_bound and not form.is_valid():
        problems = " ".join(e for errors in form.errors.values() for e in errors)
        raise ExportError(f"These filters could not be used, so nothing was exported: {problems}")
    window = form.window()
    data = QueryDict(mutable=True)
    data.update(
        {
            "tab": "failed",
            "period": "custom",
            "date_from": window.date_from.isoformat(),
            "date_to": window.date_to.isoformat(),
        }
    )
    if window.channel:
        data["channel"] = window.channel
    for name in ("provider", "company"):  # the Failed page's links narrow by these too
        if query.get(name):
            data[name] = query[name]
    return data


def describe_filters(filterset: MessageFilter) -> dict[str, Any]:
    """The filters as applied, in plain JSON (for the audit log and the Exports page)."""
    described: dict[str, Any] = {}
    start, end = filterset.date_bounds()
    for name, value in filterset.form.cleaned_data.items():
        if value in (None, "", [], ()) or name in {"date_from", "date_to"}:
            continue
        if hasattr(value, "pk"):
            value = {"id": value.pk, "name": str(value)}
        elif isinstance(value, list | tuple):
            value = [str(v) for v in value]
        elif not isinstance(value, bool | int):
            value = str(value)
        described[name] = value
    described["from"] = start.isoformat() if start else None
    described["to"] = end.isoformat() if end else None
    return described


def freeze_period(data: QueryDict, filterset: MessageFilter) -> QueryDict:
    """The query with "Last 7 days" turned into its dates: a job that runs later, or past
    midnight, exports the days the person saw."""
    frozen = data.copy()
    start, end = filterset.date_bounds()
    if start and end:
        frozen["period"] = "custom"
        frozen["date_from"], frozen["date_to"] = start.isoformat(), end.isoformat()
    for name in ("cursor", "page", "cols", "sort", "per_page"):
        frozen.pop(name, None)
    return frozen


KEYS = 3  # every row ends with its channel, status and type codes, for the totals
KEY_FIELDS = ("channel", "status", "message_type")


def rows(selection: Selection, *, as_text: bool) -> Iterator[Sequence]:
    """The selected messages as finished rows (+ KEYS), read with a server-side cursor.

    On PostgreSQL the database does the per-row work (labels, neutralizing, time zones):
    the same rules as :func:`build_rows`, written as SQL by :func:`database_columns`.
    """
    if connection.vendor == "postgresql":
        queryset, names = database_columns(selection, as_text=as_text)
        return queryset.values_list(*names, *KEY_FIELDS).iterator(chunk_size=CHUNK_ROWS)
    fields = FIELDS + CONTENT_FIELDS if selection.include_content else FIELDS
    records = selection.queryset.values_list(*fields).iterator(chunk_size=CHUNK_ROWS)
    return build_rows(records, selection.include_content, text_time if as_text else excel_time)


class Neutralized(Func):
    """:func:`neutralize` in SQL."""

    output_field = TextField()

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        # The first character alone rules out nearly every value: the regular
        # expressions run only for the few that start with a trigger or a space.
        firsts = ", ".join(["%s"] * len(FIRST_CHARACTERS))
        quote = "''''"  # a quote, as an SQL string
        return (
            f"CASE WHEN left({sql}, 1) IN ({firsts}) AND {sql} ~ %s AND {sql} !~ %s "
            f"THEN {quote} || {sql} ELSE {sql} END",
            [
                *params,
                *FIRST_CHARACTERS,
                *params,
                SQL_FORMULA,
                *params,
                SQL_PLAIN_NUMBER,
                *params,
                *params,
            ],
        )


class AtTimeZone(Func):
    """A moment as wall-clock time in a zone (a naive timestamp)."""

    template = "(%(expressions)s)"
    arg_joiner = " AT TIME ZONE "
    output_field = DateTimeField()


class TimeText(Func):
    template = "to_char(%(expressions)s, 'YYYY-MM-DD HH24:MI:SS')"
    output_field = TextField()


def labelled(name: str, default) -> Case:
    return Case(
        *(When(**{name: key}, then=Value(label)) for key, label in LABELS[name].items()),
        default=default,
        output_field=TextField(),
    )


def database_columns(selection: Selection, *, as_text: bool) -> tuple[QuerySet, list[str]]:
    """The selection's queryset annotated with the columns the database builds; their names."""
    text = TextField()
    zone_name = Coalesce(NullIf(F("company__timezone"), Value("")), Value("UTC"), output_field=text)
    expressions = [
        F("public_id"),
        Neutralized(F("company__name")),
        labelled("channel", Value("")),
        labelled("category", Value("")),
        labelled("message_type", Value("")),
        Neutralized(F("to_name")),
        Neutralized(F("to_address")),
        labelled("status", F("status")),
        Neutralized(F("status_reason")),
        Neutralized(F("error_code")),
        labelled("provider", Neutralized(F("provider"))),
        Coalesce(Neutralized(F("template__name")), Value(""), output_field=text),
        F("template_version__number"),
        Coalesce(Neutralized(F("batch__name")), Value(""), output_field=text),
        zone_name,
    ]
    for stage, _ in STAGES:
        local, utc = AtTimeZone(F(stage), zone_name), AtTimeZone(F(stage), Value("UTC"))
        expressions += [TimeText(local), TimeText(utc)] if as_text else [local, utc]
    expressions += [F("segments"), F("credits")]
    if selection.include_content:
        expressions += [Neutralized(F("subject")), Neutralized(F("body_text"))]
    names = [f"export_{i}" for i in range(len(expressions))]
    return selection.queryset.annotate(**dict(zip(names, expressions, strict=True))), names


# --- Writing ------------------------------------------------------------------------------


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


@dataclass
class Totals:
    """Messages, segments and credits by channel, status and type, kept while writing."""

    buckets: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)

    def add(self, channel: str, status: str, message_type: str, segments: int, credits: int):
        bucket = self.buckets.get((channel, status, message_type))
        if bucket is None:
            bucket = self.buckets[(channel, status, message_type)] = [0, 0, 0]
        bucket[0] += 1
        bucket[1] += segments
        bucket[2] += credits

    def by(self, position: int | None) -> list[tuple[str, int, int, int, float | None]]:
        """(key, messages, segments, credits, delivery rate) per channel (0), status (1),
        type (2), or for everything (None)."""
        grouped: dict[str, list[int]] = {}
        for key, (n, seg, cred) in self.buckets.items():
            group = grouped.setdefault("" if position is None else key[position], [0] * 5)
            group[0] += n
            group[1] += seg
            group[2] += cred
            if key[1] in rollups.ATTEMPTED:
                group[3] += n
            if key[1] in DELIVERED_GROUP:
                group[4] += n
        return [
            (key, n, seg, cred, delivery_rate(sent, delivered))
            for key, (n, seg, cred, sent, delivered) in sorted(grouped.items())
        ]


def delivery_rate(sent: int, delivered: int) -> float | None:
    """The Logs page's delivery rate (rollups.Cards): delivered ÷ handed to a provider."""
    return rollups.Cards(0, 0, 0, delivered, sent, 0, 0).delivery_rate


def write_xlsx(
    selection: Selection, target, on_progress: Callable[[int], None] | None = None
) -> int:
    """Write the Excel file (rows, then a Totals sheet) to a path or file; rows written."""
    workbook = Workbook(write_only=True)
    try:
        return _write_xlsx(workbook, selection, target, on_progress)
    except BaseException:
        discard_sheet_files(workbook)
        raise


def _write_xlsx(
    workbook: Workbook, selection: Selection, target, on_progress: Callable[[int], None] | None
) -> int:
    sheet = workbook.create_sheet("Messages")
    bold = Font(bold=True)
    heading = columns(selection.include_content)
    totals = Totals()
    at_segments, at_credits = heading.index("SMS segments"), heading.index("Credits")
    cells = SheetCells(sheet, heading, bold)
    written = 0
    with cells.rows() as write:
        chunk: list[str] = [cells.header()]
        for record in rows(selection, as_text=False):
            totals.add(*record[-KEYS:], record[at_segments], record[at_credits])
            written += 1
            chunk.append(cells.row(written + 1, record))
            if len(chunk) == XLSX_CHUNK_ROWS:
                write(chunk)
                chunk = []
                if on_progress and written % PROGRESS_EVERY < XLSX_CHUNK_ROWS:
                    on_progress(written)
        write(chunk)
    write_totals(workbook.create_sheet("Totals"), totals, selection, bold)
    save(workbook, target)
    return written


def discard_sheet_files(workbook: Workbook) -> None:
    """A failed export's temporary sheet files, removed now: openpyxl removes them only when
    the process exits, and a worker lives long (a million rows make a gigabyte of XML)."""
    for sheet in workbook.worksheets:
        writer = sheet._writer
        if writer is None or not os.path.exists(writer.out):
            continue  # never started, or already written into the archive
        with suppress(Exception):  # the stream may be half written: only the file matters
            if sheet._rows is not None:
                sheet._rows.close()  # openpyxl's row generator, inside <sheetData>
            writer.close()
        writer.cleanup()


# zlib's fastest level: a third of the default level's time for a fifth more bytes
# (at the default level, compressing the sheet took over a third of an export's CPU time).
XLSX_COMPRESSION_LEVEL = 1


def save(workbook: Workbook, target) -> None:
    """openpyxl's save_workbook, at XLSX_COMPRESSION_LEVEL."""
    workbook.properties.modified = datetime.now(UTC).replace(tzinfo=None)
    with ZipFile(
        target, "w", ZIP_DEFLATED, allowZip64=True, compresslevel=XLSX_COMPRESSION_LEVEL
    ) as archive:
        ExcelWriter(workbook, archive).save()


# Rows built per chunk, then written to the sheet's file at once.
XLSX_CHUNK_ROWS = 500
NUMBER_COLUMNS = frozenset({"Template version", "SMS segments", "Credits"})
TIME_COLUMNS = frozenset(
    heading for _, label in STAGES for heading in (f"{label} (company time)", f"{label} (UTC)")
)
TEXT, TIME, NUMBER = range(3)
SEEN_TEXTS = 1_000  # texts remembered per column, with their XML (a bounded memo)
# Only short texts are remembered: labels, names and templates repeat, a long text (an
# email's body) rarely does, and a thousand of them per column would hold megabytes for
# no hits.
SEEN_TEXT_LENGTH = 200
ONE_DAY = timedelta(days=1)


class SheetCells:
    """The Messages sheet's rows as SpreadsheetML, written into openpyxl's write-only sheet.

    openpyxl spends tens of microseconds on every cell (a Cell object, type checks, an
    element per cell); a million rows of thirty columns would take most of an hour. The
    rows are built here as text instead (inline strings, numbers, dates as serial numbers
    in openpyxl's own date style) and written straight into the sheet's file between the
    tags openpyxl writes (:class:`RowsWriter`); openpyxl still writes the workbook, the
    styles and the Totals.
    """

    def __init__(self, sheet, heading: list[str], bold: Font):
        self.sheet = sheet
        self.heading = heading
        self.letters = [get_column_letter(i + 1) for i in range(len(heading))]
        kinds = [
            TIME if title in TIME_COLUMNS else NUMBER if title in NUMBER_COLUMNS else TEXT
            for title in heading
        ]
        self.columns: list[tuple[int, str, dict[str, str]]] = [
            (kind, letter, {}) for kind, letter in zip(kinds, self.letters, strict=True)
        ]
        dated = WriteOnlyCell(sheet, value=datetime(2000, 1, 1))  # registers the date style
        self.date_style = dated.style_id
        styled = WriteOnlyCell(sheet, value="")
        styled.font = bold
        self.bold_style = styled.style_id
        # A serial number is days since the epoch (openpyxl's to_excel, whose 1900
        # leap-year correction only matters before March 1900: no message is that old).
        self.epoch = sheet.parent.epoch

    @contextmanager
    def rows(self) -> Iterator[Callable[[list[str]], None]]:
        writer = self.sheet._writer = RowsWriter(self.sheet)
        writer.write_top()
        xf = writer.xf.send(True)
        with xf.element("sheetData"):
            xf.flush()  # what lxml holds goes out first: the rows follow <sheetData>

            def write(chunk: list[str]) -> None:
                writer.file.write("".join(chunk).encode())

            yield write
        writer.xf.send(None)
        self.sheet._rows = (_ for _ in ())  # the rows are written: closing writes the tail

    def header(self) -> str:
        cells = "".join(
            f'<c r="{letter}1" s="{self.bold_style}" t="inlineStr"><is><t>{title}</t></is></c>'
            for letter, title in zip(self.letters, self.heading, strict=True)
        )
        return f'<row r="1">{cells}</row>'

    def row(self, number: int, record: Sequence) -> str:
        # The hottest loop of an Excel export (a million rows, thirty cells each): one
        # f-string per cell; a short text is looked up among its column's recent ones (labels,
        # the company, templates repeat on every row), and xml_text runs only for the rare
        # one that needs it.
        n = str(number)
        epoch, date_style = self.epoch, self.date_style
        parts = [f'<row r="{n}">']
        append = parts.append
        for (kind, letter, seen), value in zip(self.columns, record, strict=False):
            if value is None or value == "":
                continue  # an empty cell is left out
            if kind == TEXT:
                text = seen.get(value)
                if text is None:
                    text = xml_text(value) if needs_xml_work(value) else f"<t>{value}</t>"
                    if len(seen) < SEEN_TEXTS and len(value) <= SEEN_TEXT_LENGTH:
                        seen[value] = text
                append(f'<c r="{letter}{n}" t="inlineStr"><is>{text}</is></c>')
            elif kind == TIME:
                serial = (value - epoch) / ONE_DAY
                append(f'<c r="{letter}{n}" s="{date_style}"><v>{serial}</v></c>')
            else:
                append(f'<c r="{letter}{n}"><v>{value}</v></c>')
        append("</row>")
        return "".join(parts)


class RowsWriter(WorksheetWriter):
    """openpyxl's worksheet writer, over a file of ours: after ``xf.flush()`` finished rows
    can be written into it directly, in order with what lxml writes (lxml is required:
    its xmlfile can flush)."""

    file: BinaryIO

    def get_stream(self):
        # openpyxl's WorksheetWriter.get_stream, but over a Python file, not a file name.
        with (
            open(self.out, "wb") as self.file,
            xmlfile(self.file) as xf,
            xf.element("worksheet", xmlns=SHEET_MAIN_NS),
        ):
            try:
                while True:
                    element = yield
                    if element is True:
                        yield xf
                    elif element is not None:
                        xf.write(element)
            except GeneratorExit:
                pass


# Characters XML 1.0 cannot hold at all (openpyxl's own list, and U+FFFE, U+FFFF).
# openpyxl's ILLEGAL_CHARACTERS_RE (alternatives of character classes) as one class, plus
# U+FFFE and U+FFFF: one class is scanned at a fraction of the cost of alternatives,
# which matters for long email bodies.
_ILLEGAL_RANGES = ILLEGAL_CHARACTERS_RE.pattern.replace("]|[", "").strip("[]") + "\ufffe\uffff"
XML_ILLEGAL = re.compile(f"[{_ILLEGAL_RANGES}]")
XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
# A character xml_text would escape or drop (the escapes are XML_ESCAPES' own keys, so the
# two cannot disagree).
_XML_WORK_CHARS = re.compile(
    f"[{''.join(re.escape(chr(code)) for code in XML_ESCAPES)}{_ILLEGAL_RANGES}]"
)


def needs_xml_work(value: str) -> bool:
    """Whether xml_text would change a non-empty text: a character to escape or drop, or
    spaces at an end to preserve."""
    return value[0].isspace() or value[-1].isspace() or _XML_WORK_CHARS.search(value) is not None


def xml_text(value: str) -> str:
    """A <t> element for a text; characters XML cannot hold at all are dropped."""
    if XML_ILLEGAL.search(value):
        value = XML_ILLEGAL.sub("", value)
    escaped = value.translate(XML_ESCAPES)
    if value != value.strip():
        return f'<t xml:space="preserve">{escaped}</t>'
    return f"<t>{escaped}</t>"


def write_totals(sheet, totals: Totals, selection: Selection, bold: Font) -> None:
    def heading(*titles: str) -> list:
        cells = []
        for title in titles:
            cell = WriteOnlyCell(sheet, value=title)
            cell.font = bold
            cells.append(cell)
        return cells

    def rate(value: float | None):
        if value is None:
            return None
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = "0.0%"
        return cell

    filters = selection.filters
    period = (
        f"{filters.get('from') or 'the beginning'} to {filters.get('to') or 'today'} (UTC days)"
    )
    sheet.append(heading("Totals for the exported messages"))
    sheet.append(["Period", period])
    sheet.append([])
    labels = {0: LABELS["channel"], 1: LABELS["status"], 2: LABELS["message_type"]}
    for position, title in ((0, "Channel"), (1, "Status"), (2, "Type")):
        sheet.append(heading(title, "Messages", "SMS segments", "Credits", "Delivery rate"))
        for key, n, seg, cred, delivered in totals.by(position):
            sheet.append([labels[position].get(key, key), n, seg, cred, rate(delivered)])
        sheet.append([])
    for _, n, seg, cred, delivered in totals.by(None):
        sheet.append([*heading("All"), n, seg, cred, rate(delivered)])


# --- Naming, auditing, background jobs --------------------------------------------------


def file_name(selection: Selection, file_format: str, now: datetime | None = None) -> str:
    now = (now or timezone.now()).astimezone(UTC)
    owner = slugify(selection.company.name) if selection.company else "all-companies"
    extension = FORMATS[file_format][0]
    return f"messages-{owner}-{selection.source}-{now:%Y%m%d-%H%M}.{extension}"


def inline_limit(file_format: str) -> int:
    """Above this many rows an export runs in the background."""
    if file_format == "xlsx":
        return settings.EXPORT_XLSX_INLINE_MAX_ROWS
    return settings.EXPORT_CSV_INLINE_MAX_ROWS


def record_export(
    selection: Selection, file_format: str, rows: int, *, request=None, actor=None, **extra
):
    """The audit entry every export leaves: who, when, which filters, how many rows."""
    where = {"logs": "Logs", "failed": "Failed", "contact": "a contact", "batch": "a batch"}
    return audit.record(
        audit.Action.EXPORT,
        f"Exported {rows:,} messages from {where[selection.source]} as {file_format.upper()}",
        request=request,
        company=selection.company,
        actor=actor,
        details={
            "format": file_format,
            "source": selection.source,
            "source_id": selection.source_id,
            "filters": selection.filters,
            "rows": rows,
            "content_included": selection.include_content,
            **extra,
        },
    )


def start_job(selection: Selection, file_format: str, user, rows: int) -> Export:
    """A background export of `rows` rows; the caller enqueues `msglog.tasks.run_export`."""
    if selection.company is None:
        raise ExportError(
            "This export is too big to make across all companies: pick one company first."
        )
    now = timezone.now()
    return Export.objects.create(
        company=selection.company,
        requested_by=user,
        file_format=file_format,
        source=selection.source,
        source_id=selection.source_id,
        query=selection.frozen_query,
        filters=selection.filters,
        include_content=selection.include_content,
        rows_expected=rows,
        file_name=file_name(selection, file_format, now),
        created_at=now,
        expires_at=now + timedelta(hours=settings.EXPORT_FILE_HOURS),
    )


def export_path(export: Export) -> Path:
    return Path(settings.MEDIA_ROOT) / export.file_path


def run_job(export_id: int) -> str:
    """Write a background export's file (inside the company's scope); safe to run twice."""
    export = Export.objects.filter(pk=export_id).select_related("company").first()
    if export is None or export.state == Export.State.READY:
        return "done"
    Export.objects.filter(pk=export.pk).update(state=Export.State.RUNNING, rows_written=0)
    relative = Path("exports") / str(export.company_id) / f"{export.public_id}.{export.file_format}"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")

    written = [0]

    def progress(rows: int) -> None:
        written[0] = rows
        Export.objects.filter(pk=export.pk).update(rows_written=rows)

    try:
        selection = select(
            company=export.company,
            all_companies=False,
            source=export.source,
            source_id=export.source_id,
            query=export.query,
            include_content=export.include_content,
        )
        if export.file_format == "xlsx":
            rows = write_xlsx(selection, partial, progress)
        else:
            with partial.open("wb") as out:
                for chunk in csv_chunks(selection, progress):
                    out.write(chunk)
            rows = written[0]
        os.replace(partial, target)
    except Exception as error:
        logger.exception("Export %s failed", export.public_id)
        partial.unlink(missing_ok=True)
        message = str(error) if isinstance(error, ExportError) else "The file could not be written."
        Export.objects.filter(pk=export.pk).update(
            state=Export.State.FAILED, error=message[:300], finished_at=timezone.now()
        )
        return "failed"
    Export.objects.filter(pk=export.pk).update(
        state=Export.State.READY,
        rows_written=rows,
        file_path=str(relative),
        file_size=target.stat().st_size,
        finished_at=timezone.now(),
    )
    return "ready"


def delete_exports(exports: QuerySet) -> int:
    """Delete exports and their files (expiry here; retention may call it too)."""
    deleted = 0
    for export in exports.only("pk", "file_path", "public_id", "company_id", "file_format"):
        if export.file_path:
            export_path(export).unlink(missing_ok=True)
        export.delete()
        deleted += 1
    return deleted


def expire_company_exports(company_id: int, cutoff: datetime) -> int:
    """Retention: a company's exports made before its retention cutoff, files included."""
    return delete_exports(Export.objects.filter(company_id=company_id, created_at__lt=cutoff))


def erase_company_exports(company_id: int, addresses: frozenset[str]) -> int:
    """Erasure: a company's export files that mention an erased address."""
    from .purging import file_mentions

    mentioning = [
        export.pk
        for export in Export.objects.filter(company_id=company_id).exclude(file_path="")
        if export_path(export).exists() and file_mentions(export_path(export), addresses)
    ]
    return delete_exports(Export.objects.filter(pk__in=mentioning))


def delete_expired(now: datetime | None = None) -> int:
    """Every company's exports whose time is up (the caller disables scopes)."""
    return delete_exports(Export.objects.filter(expires_at__lte=now or timezone.now()))
