"""Recording reports about a message: stored once, status derived from the set."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope

from msglog.events import record_event
from msglog.models import StatusEvent
from tests.factories import MessageFactory


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
