"""Recording reports about a message: stored once, status derived from the set."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope

from msglog.models import Batch, Message, StatusEvent
from msglog.services.events import new_event, record_event, record_events
from tests.factories import BatchFactory, MessageFactory


@pytest.mark.django_db
def test_the_same_report_twice_is_stored_once(acme):
    message = MessageFactory(company=acme, provider_message_id="SM123")
    at = timezone.now()
    with scope(company=acme.pk):
        assert record_event(message, "delivered", source="twilio", occurred_at=at) is True
        assert record_event(message, "delivered", source="twilio", occurred_at=at) is False
        assert StatusEvent.objects.filter(message=message).count() == 1
        message.refresh_from_db()
    assert message.status == "delivered"
    assert message.delivered_at == at


@pytest.mark.django_db
def test_reports_arriving_out_of_order_end_in_the_same_place(acme):
    message = MessageFactory(company=acme)
    t0 = timezone.now()
    with scope(company=acme.pk):
        record_event(message, "delivered", occurred_at=t0 + timedelta(seconds=5))
        record_event(message, "sent", occurred_at=t0 + timedelta(seconds=1))
        record_event(message, "sending", occurred_at=t0)
        message.refresh_from_db()
    assert message.status == "delivered"
    assert message.sent_at == t0 + timedelta(seconds=1)


@pytest.mark.django_db
def test_a_duplicate_inside_a_larger_transaction_spoils_nothing(acme):
    from django.db import transaction

    message = MessageFactory(company=acme)
    at = timezone.now()
    with scope(company=acme.pk), transaction.atomic():
        record_event(message, "sent", occurred_at=at)
        record_event(message, "sent", occurred_at=at)
        record_event(message, "delivered", occurred_at=at + timedelta(seconds=2))
    message.refresh_from_db()
    assert message.status == "delivered"


@pytest.mark.django_db
def test_applying_events_reads_the_locked_messages_in_one_query(acme):
    """Everything the status rule, the rollups and the batch counters read of a locked
    message is loaded with it (LOCKED_FIELDS): no deferred field is fetched row by row
    while the lock is held."""
    batch = BatchFactory(company=acme, total_count=3, pending_count=3)  # three queued
    messages = [MessageFactory(company=acme, batch=batch) for _ in range(3)]
    at = timezone.now()
    with scope(company=acme.pk), CaptureQueriesContext(connection) as queries:
        record_events([new_event(m, "delivered", occurred_at=at) for m in messages])
    message_reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "msglog_message"' in q["sql"]
    ]
    assert len(message_reads) == 1, message_reads
    with scope(company=acme.pk):
        assert set(Message.objects.values_list("status", flat=True)) == {"delivered"}
        batch = Batch.objects.get(pk=batch.pk)
    assert (batch.pending_count, batch.delivered_count) == (0, 3)
