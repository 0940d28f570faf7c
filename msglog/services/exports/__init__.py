"""Exports for accountants: CSV and Excel of exactly the rows a view's filters select.

The rules live here, whatever starts an export (the Export menu, a background job, the
benchmark):

- Which rows (:mod:`.selection`): :func:`~.selection.select` rebuilds the view's
  queryset from its query string with the view's own filter set (Logs, Failed, a
  contact's page, a batch's page), for one company. Every page of the view, not just the
  visible one, newest first.
- Which columns (:mod:`.columns`): every column the tables can show plus the ones an
  accountant reconciles with: message id, channel, category, type, recipient, status and
  its reason, error code, provider, template and version, batch, every stage's time in
  the company's time zone and in UTC, SMS segments, credits, company. Subject and text
  only for roles that may read content.
- Safety: every text a person or provider could have typed is neutralized against
  spreadsheet formulas (msglog.rules.cells); numbers are written as numbers.
- How: CSV (:mod:`.csv_file`) streams in chunks from a server-side cursor (constant
  memory, the header within a second); Excel (:mod:`.excel_file`) uses openpyxl's
  write-only mode with a second sheet of totals. Above a threshold the export becomes a
  background :class:`~msglog.models.Export` job (:mod:`.jobs`).
"""

from __future__ import annotations

FORMATS: dict[str, tuple[str, str]] = {  # format: (extension, content type)
    "csv": ("csv", "text/csv; charset=utf-8"),
    "xlsx": ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


# Rows fetched per round trip of the server-side cursor, and per CSV chunk sent.
CHUNK_ROWS = 2_000


PROGRESS_EVERY = 10_000


class ExportError(Exception):
    """A request that cannot be exported; the message says why, in the user's words."""
