"""Tasks run inside the company's scope, and a task published inside a transaction waits
for its commit."""

from __future__ import annotations

import pytest
import redis
from django.db import transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from msglog.models import StatusEvent
from msglog.rules.dedupe import dedupe_key
from msglog.workers import tasks
from tests.factories import MessageFactory


@pytest.mark.django_db
def test_refreshing_a_message_runs_in_its_company_scope(acme):
    message = MessageFactory(company=acme)
    with scopes_disabled():
        StatusEvent.objects.create(
            company=acme,
            message=message,
            status="delivered",
            occurred_at=timezone.now(),
            dedupe_key=dedupe_key("x"),
        )
    # No scope is active here: the task must bring its own.
    assert tasks.refresh_message_status(acme.pk, message.pk) == "delivered"


@pytest.mark.django_db
def test_a_task_for_another_companys_message_finds_nothing(acme, rival):
    message = MessageFactory(company=rival)
    assert tasks.refresh_message_status(acme.pk, message.pk) == "missing"


@pytest.fixture
def maintenance_queue(settings):
    """The real Redis list of the maintenance queue (an empty one)."""
    if not settings.REDIS_URL:
        pytest.skip("needs the Redis broker (REDIS_URL)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("maintenance")
    yield lambda: client.llen("maintenance")
    client.delete("maintenance")


@pytest.mark.django_db(transaction=True)
def test_a_task_that_publishes_another_waits_for_its_commit(acme, maintenance_queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.purge_company_messages.delay(acme.pk)
        raise RuntimeError("the purge failed")
    assert maintenance_queue() == 0
    with transaction.atomic():
        tasks.purge_company_messages.delay(acme.pk)
        assert maintenance_queue() == 0  # not before the commit
    assert maintenance_queue() == 1
