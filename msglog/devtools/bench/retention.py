"""Benchmark of the retention purge: rows/s, and the Logs page while it runs.

Self-contained and repeatable: it adds its own company with N expired messages (and
three events each) by INSERT ... SELECT, so the data from `seed_bulk` is left as it is.
The purge runs in its own process (`manage.py purge_expired`), as a Celery worker would,
while this process reads the Logs page of the biggest seeded company: its p95 before and
during the purge are the figures that say whether the purge gets in readers' way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django_scopes import scopes_disabled

from companies.models import Company
from msglog.devtools.bench.common import (
    BENCH_USER,
    allow_test_client,
    biggest_company,
    company_messages,
    signed_in,
    timed,
)

EXPIRED_MESSAGES = int(os.environ.get("BENCH_RETENTION_MESSAGES", "1000000"))
EVENTS_PER_MESSAGE = 3

MESSAGES_SQL = """
INSERT INTO msglog_message (
    public_id, channel, to_address, to_name, category, message_type, subject, body_text,
    body_html, provider, provider_message_id, status, status_reason, error_code,
    error_message, segments, encoding, credits, idempotency_key, created_at, updated_at,
    sent_at, delivered_at, attempts, metadata, company_id)
SELECT
    %(run)s || '-' || g,
    CASE WHEN g %% 3 = 0 THEN 'sms' ELSE 'email' END,
    CASE WHEN g %% 3 = 0 THEN '+1415' || lpad((g %% 10000000)::text, 7, '0')
         ELSE 'old' || g || '@example.org' END,
    'Old Recipient', 'transactional', 'reminder', 'Your appointment',
    'Hello, this is a reminder of your appointment tomorrow at 10:00.', '',
    'simulator', '', 'delivered', '', '', '', (g %% 3 = 0)::int, '', (g %% 3 = 0)::int, '',
    t.ts, t.ts, t.ts, t.ts, 1, '{}'::jsonb, %(company)s
FROM generate_series(%(first)s, %(last)s) AS g,
     LATERAL (SELECT now() - interval '40 days' - (g %% 40000) * interval '1 minute' AS ts) t
"""

EVENTS_SQL = """
INSERT INTO msglog_statusevent (
    status, event, occurred_at, received_at, source, error_code, error_message, reason,
    provider_event_id, dedupe_key, raw_payload, company_id, message_id)
SELECT
    (ARRAY['queued', 'sent', 'delivered'])[k], '', m.created_at, m.created_at, 'simulator',
    '', '', '', '', md5(m.public_id || k), jsonb_build_object('To', m.to_address, 'k', k),
    m.company_id, m.id
FROM msglog_message m, generate_series(1, %(events)s) AS k
WHERE m.company_id = %(company)s AND m.id BETWEEN %(low)s AND %(high)s
"""


def expired_company(n: int) -> tuple[Company, int, int]:
    """A fresh company with `n` messages past its 30-day retention, and their events."""
    run = datetime.now(UTC).strftime("r%H%M%S")
    company = Company.objects.create(
        name=f"Retention bench {run}", slug=f"retention-bench-{run}", retention_days=30
    )
    step = 100_000
    with connection.cursor() as cursor:
        for first in range(1, n + 1, step):
            last = min(n, first + step - 1)
            with transaction.atomic():
                cursor.execute(
                    MESSAGES_SQL + " RETURNING id",
                    {"run": run, "company": company.pk, "first": first, "last": last},
                )
                ids = [row[0] for row in cursor.fetchall()]
                cursor.execute(
                    EVENTS_SQL,
                    {
                        "events": EVENTS_PER_MESSAGE,
                        "company": company.pk,
                        "low": min(ids),
                        "high": max(ids),
                    },
                )
        cursor.execute("ANALYZE msglog_message")
        cursor.execute("ANALYZE msglog_statusevent")
    return company, n, n * EVENTS_PER_MESSAGE


def bench_retention(runs: int = 30) -> dict:
    # msglog.devtools.bench registers this function, so its helpers are imported here, not above.

    allow_test_client()
    reader_company = biggest_company()
    reader = signed_in(BENCH_USER, reader_company)
    url = "/logs/"
    assert reader.get(url).status_code == 200

    setup_start = time.perf_counter()
    with scopes_disabled():
        company, messages, events = expired_company(EXPIRED_MESSAGES)
    setup_s = time.perf_counter() - setup_start

    before = timed(lambda: reader.get(url), runs)
    purge = subprocess.Popen(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "purge_expired",
            "--company",
            str(company.pk),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    samples = []
    while purge.poll() is None:
        start = time.perf_counter()
        reader.get(url)
        samples.append((time.perf_counter() - start) * 1000)
    output, _ = purge.communicate()
    report = json.loads(output.strip().splitlines()[-1])
    purged = report[company.slug]
    seconds = report["seconds"]
    samples.sort()
    rows = purged.get("msglog.Message", 0) + purged.get("msglog.StatusEvent", 0)
    with scopes_disabled():
        Company.objects.filter(pk=company.pk).delete()
    return {
        "expired_messages": messages,
        "expired_events": events,
        "setup_s": round(setup_s, 1),
        "purged": purged,
        "purge_s": seconds,
        "messages_per_s": round(purged.get("msglog.Message", 0) / seconds),
        "rows_per_s": round(rows / seconds),
        "longest_chunk_ms": report.get("longest_chunk_ms"),
        "logs_page_company_messages": company_messages(reader_company),
        "logs_before_purge": before,
        "logs_during_purge": {
            "median_ms": round(samples[len(samples) // 2], 1) if samples else None,
            "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 1)
            if samples
            else None,
            "runs": len(samples),
        },
    }
