"""Many rows written in one statement store exactly what Django's save() would, and a bulk
write pauses the garbage collector while it makes its objects."""

from __future__ import annotations

import gc
import threading
from datetime import UTC, datetime

import pytest
from django.db import DataError, transaction
from django_scopes import scopes_disabled

from msglog.models import Message, StatusEvent
from msglog.services.bulk_writes import gc_paused, insert_new, update_fields
from msglog.services.events import new_event
from tests.factories import BatchFactory, MessageFactory

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def stored(message: Message) -> Message:
    with scopes_disabled():
        return Message.objects.get(pk=message.pk)


@pytest.mark.django_db
def test_each_row_gets_its_own_values_and_other_rows_keep_theirs(acme):
    batch = BatchFactory(company=acme)
    first, second, untouched = (MessageFactory(company=acme, sent_at=T0) for _ in range(3))
    first.status, first.error_message, first.delivered_at = "delivered", "", T0
    first.segments, first.batch_id, first.metadata = 3, batch.pk, {"ward": "B", "n": [1, 2]}
    second.status, second.error_message, second.delivered_at = "failed", "Ünreachable 'x'", None
    second.segments, second.batch_id, second.sent_at, second.metadata = 1, None, None, {}

    fields = ["status", "error_message", "delivered_at", "segments", "batch_id", "sent_at"]
    update_fields([first, second], [*fields, "metadata"])

    for message in (first, second):
        row = stored(message)
        assert [getattr(row, name) for name in fields] == [
            getattr(message, name) for name in fields
        ]
        assert row.metadata == message.metadata
    assert (stored(untouched).status, stored(untouched).sent_at) == ("queued", T0)


@pytest.mark.django_db
def test_a_value_too_long_for_its_column_is_refused_not_cut(acme):
    message = MessageFactory(company=acme)
    message.error_code = "x" * 41  # max_length=40
    with pytest.raises(DataError), transaction.atomic():
        update_fields([message], ["error_code"])
    assert stored(message).error_code == ""


@pytest.mark.django_db
def test_a_naive_time_is_read_as_django_reads_it(acme):
    message = MessageFactory(company=acme)
    message.sent_at = datetime(2026, 11, 23, 9, 0)  # naive: the point of the test
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        update_fields([message], ["sent_at"])
    assert stored(message).sent_at == T0  # TIME_ZONE is UTC


@pytest.mark.django_db
def test_new_rows_are_inserted_and_one_already_there_is_skipped(acme):
    message = MessageFactory(company=acme, provider_message_id="SM1")
    delivered = new_event(message, "delivered", occurred_at=T0, raw_payload={"To": "+1"})
    again = new_event(message, "delivered", occurred_at=T0, raw_payload={"To": "+1"})
    sent = new_event(message, "sent", occurred_at=T0)

    insert_new([delivered, again, sent])

    with scopes_disabled():
        rows = {e.status: e for e in StatusEvent.objects.filter(message=message)}
    assert sorted(rows) == ["delivered", "sent"]
    assert rows["delivered"].raw_payload == {"To": "+1"}
    assert rows["delivered"].occurred_at == T0
    assert rows["delivered"].dedupe_key == delivered.dedupe_key
    assert rows["sent"].raw_payload == {}


def test_a_bulk_send_pauses_the_garbage_collector_and_restores_it():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested: the outer one restores it
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), gc_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads_keep_the_collector_off_until_the_last_ends():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen_by_second: list[bool] = []

    def first():
        with gc_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with gc_paused():
            second_in.set()
            first_out.wait(5)
            seen_by_second.append(gc.isenabled())  # the first pause has ended by now

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen_by_second == [False]
    assert gc.isenabled()
