"""Services publish tasks by name, only once the transaction that wrote their data commits,
routed to their queue (the broker's real Redis lists are read)."""

from __future__ import annotations

import base64
import json

import pytest
import redis
from django.db import transaction

from msglog.services import queue, sending


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
        queue.publish_on_commit("msglog.tasks.refresh_message_status", acme.pk, 1)
        raise RuntimeError("the request failed")
    assert events_queue() == 0
    with transaction.atomic():
        queue.publish_on_commit("msglog.tasks.refresh_message_status", acme.pk, 2)
        assert events_queue() == 0  # not before the commit
    assert events_queue() == 1


@pytest.fixture
def email_queue(settings):
    """The real Redis list of the email queue, as published task bodies (an empty one)."""
    if not settings.REDIS_URL:
        pytest.skip("needs the Redis broker (REDIS_URL)")
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete("email")

    def published() -> list[list[int]]:
        bodies = [json.loads(m) for m in client.lrange("email", 0, -1)]
        return [json.loads(base64.b64decode(b["body"]))[0][1] for b in reversed(bodies)]

    yield published
    client.delete("email")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("messages", "sizes"),
    [
        (1, [1]),
        (1_200, [500, 500, 200]),  # up to 25,000 recipients: chunks of 500
        (60_000, [1_200] * 50),  # bigger: about 50 tasks
        (150_000, [2_000] * 75),  # at most 2,000 ids a task
    ],
)
def test_a_send_is_published_in_chunks_that_grow_with_it(acme, email_queue, messages, sizes):
    ids = list(range(1, messages + 1))
    with transaction.atomic():
        sending.queue_sends(acme.pk, "email", ids)
        assert email_queue() == []  # not before the commit
    chunks = email_queue()
    assert [len(chunk) for chunk in chunks] == sizes
    assert [i for chunk in chunks for i in chunk] == ids  # every id once, in order
