"""Retention: each company's log is kept for its retention period, then deleted.

A nightly task deletes, company by company, messages created before the cutoff with
their events and dependent rows, in chunks of a few thousand per short transaction, so
no lock is held for long and the Logs page stays readable during the purge. The daily
rollups are kept: reports of past months stay right after their messages are gone.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import date, datetime, timedelta

from django.utils import timezone

from companies.models import Company
from msglog.models import Message
from msglog.services import purging

CHUNK = 2000  # messages per transaction: ~0.1 s of locks on PostgreSQL


def cutoff(company: Company, now: datetime | None = None) -> datetime:
    """Messages created before this moment are past the company's retention period."""
    return (now or timezone.now()) - timedelta(days=company.retention_days)


def earliest_day(company: Company, today: date) -> date:
    """The first (UTC) day whose messages may still be in the log."""
    return today - timedelta(days=company.retention_days)


def why_not_before(company: Company, today: date) -> str:
    """The words the Logs date filter uses when asked for a day past retention."""
    first = earliest_day(company, today)
    return (
        f"{company.name} keeps messages for {company.retention_days} days; older ones are "
        f"deleted. Choose a date from {first.isoformat()} on."
    )


def expired_ids(company_id: int, before: datetime, limit: int) -> list[int]:
    """The oldest expired messages, by the (company, created_at) index."""
    return list(
        Message._base_manager.filter(company_id=company_id, created_at__lt=before)
        .order_by("created_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def purge_company(
    company: Company,
    *,
    now: datetime | None = None,
    chunk: int = CHUNK,
    pause: float = 0.0,
    max_chunks: int | None = None,
    timings: list[float] | None = None,
) -> Counter:
    """Delete one company's expired messages, their dependents, and expired owned files.

    `pause` seconds between chunks leave room to other writers; `max_chunks` bounds one
    run (the next night continues where this one stopped). Each chunk's seconds (its
    transaction's length) are appended to `timings` when given.
    """
    before = cutoff(company, now)
    counts: Counter = Counter()
    done = 0
    while max_chunks is None or done < max_chunks:
        started = time.perf_counter()
        ids = expired_ids(company.pk, before, chunk)
        if not ids:
            break
        counts.update(purging.delete_messages(company.pk, ids))
        if timings is not None:
            timings.append(time.perf_counter() - started)
        done += 1
        if len(ids) < chunk:
            break
        if pause:
            time.sleep(pause)
    for label, hook in purging.EXPIRY_HOOKS.items():
        counts[label] += hook(company.pk, before)
    return counts
