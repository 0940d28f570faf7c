"""The Excel (.xlsx) writer: openpyxl's write-only mode, a sheet of messages and a sheet of
totals, with the cell XML written by our own fast path (:class:`SheetCells`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, BinaryIO
from zipfile import ZIP_DEFLATED, ZipFile

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.writer.excel import ExcelWriter
from openpyxl.xml.constants import SHEET_MAIN_NS
from openpyxl.xml.functions import xmlfile

from msglog.queries import stats
from msglog.rules.statuses import DELIVERED_GROUP
from msglog.services.exports import PROGRESS_EVERY
from msglog.services.exports.columns import LABELS, STAGES, columns
from msglog.services.exports.selection import KEYS, Selection, rows

if TYPE_CHECKING:
    from openpyxl.cell.cell import Cell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

#: Where a workbook is written: a path, or a binary file open for writing.
XlsxTarget = str | os.PathLike[str] | IO[bytes]


@dataclass
class Totals:
    """Messages, segments and credits by channel, status and type, kept while writing."""

    buckets: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)

    def add(
        self, channel: str, status: str, message_type: str, segments: int, credits: int
    ) -> None:
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
            if key[1] in stats.ATTEMPTED:
                group[3] += n
            if key[1] in DELIVERED_GROUP:
                group[4] += n
        return [
            (key, n, seg, cred, delivery_rate(sent, delivered))
            for key, (n, seg, cred, sent, delivered) in sorted(grouped.items())
        ]


def delivery_rate(sent: int, delivered: int) -> float | None:
    """The Logs page's delivery rate (stats.Cards): delivered ÷ handed to a provider."""
    return stats.Cards(0, 0, 0, delivered, sent, 0, 0).delivery_rate


def write_xlsx(
    selection: Selection, target: XlsxTarget, on_progress: Callable[[int], None] | None = None
) -> int:
    """Write the Excel file (rows, then a Totals sheet) to a path or file; rows written."""
    workbook = Workbook(write_only=True)
    try:
        return _write_xlsx(workbook, selection, target, on_progress)
    except BaseException:
        discard_sheet_files(workbook)
        raise


def _write_xlsx(
    workbook: Workbook,
    selection: Selection,
    target: XlsxTarget,
    on_progress: Callable[[int], None] | None,
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
            channel, status, message_type = record[-KEYS:]
            totals.add(channel, status, message_type, record[at_segments], record[at_credits])
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


def save(workbook: Workbook, target: XlsxTarget) -> None:
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

    def __init__(self, sheet: WriteOnlyWorksheet, heading: list[str], bold: Font) -> None:
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

    def get_stream(self) -> Generator[Any, Any, None]:
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


def write_totals(
    sheet: WriteOnlyWorksheet, totals: Totals, selection: Selection, bold: Font
) -> None:
    def heading(*titles: str) -> list:
        cells = []
        for title in titles:
            cell = WriteOnlyCell(sheet, value=title)
            cell.font = bold
            cells.append(cell)
        return cells

    def rate(value: float | None) -> Cell | None:
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


TEXT, TIME, NUMBER = range(3)
