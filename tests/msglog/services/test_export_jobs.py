"""A big export runs in the background: progress, then the file on the Exports page.

End to end on Redis with a real Celery worker process listening on the `exports` queue.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
import redis
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from companies.models import AuditEntry
from msglog.devtools.worker_processes import start_worker, stop_workers, worker_env
from msglog.models import Export
from msglog.services.exports import jobs, selection
from tests.factories import MessageFactory

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def small_threshold(settings, tmp_path):
    settings.EXPORT_CSV_INLINE_MAX_ROWS = 10
    settings.EXPORT_XLSX_INLINE_MAX_ROWS = 10
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings


@pytest.fixture
def broker(settings):
    if not settings.REDIS_URL:
        pytest.skip("background exports are tested on the Redis broker (REDIS_URL)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield settings.REDIS_URL
    client.flushdb()


@pytest.fixture
def worker(broker, small_threshold, tmp_path):
    env = worker_env(broker, MEDIA_ROOT=str(small_threshold.MEDIA_ROOT))
    process = start_worker(
        "exports",
        queues="exports",
        env=env,
        log=tmp_path / "worker.log",
        pool="solo",
        loglevel="INFO",
    )
    yield process
    stop_workers(process, timeout=15)


def wait_until_finished(public_id: str, seconds: float = 120) -> Export:
    deadline = time.monotonic() + seconds
    while True:
        with scopes_disabled():
            export = Export.objects.get(public_id=public_id)
        if export.is_finished:
            return export
        assert time.monotonic() < deadline, f"export still {export.state}"
        time.sleep(0.3)


def download(client, export: Export) -> bytes:
    response = client.get(f"/exports/{export.public_id}/download/")
    assert response.status_code == 200
    assert export.file_name in response["Content-Disposition"]
    return b"".join(response.streaming_content)


@pytest.mark.django_db(transaction=True)
def test_a_big_export_is_made_by_a_worker_and_waits_on_the_exports_page(
    acme, rival, accountant, worker
):
    now = timezone.now()
    for i in range(60):
        MessageFactory(company=acme, created_at=now - timedelta(hours=i), credits=i % 3)
    MessageFactory(company=rival, to_address="secret@rival.example")
    client = accountant.client()

    # Too many rows to stream: a job, and the page that shows how far it is.
    response = client.post(
        "/exports/new/", {"format": "csv", "source": "logs", "query": "period=7d"}
    )
    assert response.status_code == 302
    public_id = response["Location"].rstrip("/").split("/")[-1]
    page = client.get(response["Location"]).content.decode()
    assert "60 messages" in page

    export = wait_until_finished(public_id)
    assert export.state == "ready", export.error
    assert export.rows_written == 60 and export.percent == 100
    listing = client.get("/exports/").content.decode()
    assert export.file_name in listing and "/download/" in listing
    rows = list(csv.DictReader(io.StringIO(download(client, export).decode("utf-8-sig"))))
    with scope(company=acme.pk):
        wanted = set(
            selection.select(
                company=acme,
                all_companies=False,
                source="logs",
                source_id=None,
                query="period=7d",
                include_content=False,
            ).queryset.values_list("public_id", flat=True)
        )
    assert {r["Message ID"] for r in rows} == wanted and len(wanted) == 60

    # The Excel file, the same way.
    response = client.post(
        "/exports/new/", {"format": "xlsx", "source": "logs", "query": "period=7d"}
    )
    export = wait_until_finished(response["Location"].rstrip("/").split("/")[-1])
    assert export.state == "ready", export.error
    book = openpyxl.load_workbook(io.BytesIO(download(client, export)))
    assert book["Messages"].max_row == 61 and "Totals" in book.sheetnames

    with scopes_disabled():
        entries = AuditEntry.objects.filter(action="export", company=acme)
        assert sorted(e.details["rows"] for e in entries) == [60, 60]
        assert all(e.actor == accountant.user for e in entries)


@pytest.mark.django_db
def test_content_in_a_background_file_stays_with_roles_that_may_read_it(
    acme, admin, accountant, small_threshold
):
    for _ in range(12):
        MessageFactory(company=acme, subject="Your biopsy results")
    response = admin.client().post(
        "/exports/new/", {"format": "csv", "source": "logs", "query": ""}
    )
    assert response.status_code == 302
    with scopes_disabled():
        export = Export.objects.get()
    with scope(company=acme.pk):
        assert jobs.run_job(export.pk) == "ready"
    export.refresh_from_db()
    assert export.include_content

    assert b"biopsy" in download(admin.client(), export)
    client = accountant.client()
    assert client.get(f"/exports/{export.public_id}/download/").status_code == 403
    listing = client.get("/exports/").content.decode()
    assert "content your role may not read" in listing


@pytest.mark.django_db
def test_a_job_needs_one_company(acme, rival, operator, small_threshold):
    for company in (acme, rival):
        for _ in range(6):
            MessageFactory(company=company)
    response = operator.client().post(
        "/exports/new/", {"format": "csv", "source": "logs", "query": ""}
    )
    assert response.status_code == 400
    assert "pick one company" in response.content.decode()
