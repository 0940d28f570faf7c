"""Tasks run inside the company's scope and are published only after commit."""

from __future__ import annotations

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from msglog import tasks
from msglog.events import dedupe_key
from msglog.models import StatusEvent
from tests.factories import MessageFactory


@pytest.mark.django_db
def test_refreshing_a_message_runs_in_its_company_scope(acme):
    message = MessageFactory(company=acme)
    from django_scopes import scopes_disabled

    with scopes_disabled():
        StatusEvent.objects.create(
            company=acme,
            message=message,
            status="delivered",
            occurred_at=timezone.now(),
            dedupe_key=dedupe_key("x"),
        )
    # No scope is active here: the task must bring its own.
    assert tasks.refresh_message_status.run(acme.pk, message.pk) == "delivered"


@pytest.mark.django_db
def test_a_task_for_another_companys_message_finds_nothing(acme, rival):
    message = MessageFactory(company=rival)
    assert tasks.refresh_message_status.run(acme.pk, message.pk) == "missing"


@pytest.fixture
def events_queue(settings):
    """The real Redis list the broker keeps the events queue in (an empty one)."""
    if not settings.REDIS_URL:
        pytest.skip("needs the Redis broker (REDIS_URL)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("events")
    yield lambda: client.llen("events")
    client.delete("events")


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transaction_publishes_no_task(acme, events_queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.enqueue_on_commit(tasks.refresh_message_status, acme.pk, 1)
        raise RuntimeError("the request failed")
    assert events_queue() == 0
    with transaction.atomic():
        tasks.enqueue_on_commit(tasks.refresh_message_status, acme.pk, 2)
        assert events_queue() == 0  # not before the commit
    assert events_queue() == 1
