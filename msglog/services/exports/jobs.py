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

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from companies import audit
from companies.models import AuditEntry
from msglog.models import Export
from msglog.services import queue
from msglog.services.exports import FORMATS, ExportError
from msglog.services.exports.csv_file import csv_chunks
from msglog.services.exports.excel_file import write_xlsx
from msglog.services.exports.selection import Selection, select
from msglog.services.purging import file_mentions

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)


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
    selection: Selection,
    file_format: str,
    rows: int,
    *,
    request: HttpRequest | None = None,
    actor: User | None = None,
    **extra: object,
) -> AuditEntry:
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


def start_job(
    selection: Selection,
    file_format: str,
    user: User,
    rows: int,
    request: HttpRequest | None = None,
) -> Export:
    """A background export of `rows` rows, in the audit log, written by a worker once
    committed."""
    if selection.company is None:
        raise ExportError(
            "This export is too big to make across all companies: pick one company first."
        )
    with transaction.atomic():
        export = _new_job(selection, file_format, user, rows)
        record_export(selection, file_format, rows, request=request, export=export.public_id)
        queue.publish_on_commit("msglog.tasks.run_export", export.company_id, export.pk)
    return export


def _new_job(selection: Selection, file_format: str, user: User, rows: int) -> Export:
    assert selection.company is not None  # start_job makes no export across all companies
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

    mentioning = [
        export.pk
        for export in Export.objects.filter(company_id=company_id).exclude(file_path="")
        if export_path(export).exists() and file_mentions(export_path(export), addresses)
    ]
    return delete_exports(Export.objects.filter(pk__in=mentioning))


def delete_expired(now: datetime | None = None) -> int:
    """Every company's exports whose time is up (the caller disables scopes)."""
    return delete_exports(Export.objects.filter(expires_at__lte=now or timezone.now()))
