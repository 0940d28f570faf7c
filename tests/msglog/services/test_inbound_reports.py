"""However reports arrive — shuffled, duplicated, split across batches or workers — the
log ends in the same place: statuses, stage times, batch counters and daily rollups."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from anymail.signals import AnymailTrackingEvent
from django.db import connection, transaction
from django.utils import timezone
from django_scopes import scopes_disabled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msglog.models import Batch, DailyRollup, InboundReport, Message, StatusEvent
from msglog.providers.anymail.webhooks import tracking_report
from msglog.providers.twilio.webhooks import status_report
from msglog.rules.statuses import DERIVED_FIELDS
from msglog.services import batch_counters, erasure, inbound_reports, rollups
from msglog.workers.tasks import apply_provider_reports
from tests.clock import ago
from tests.factories import BatchFactory, CompanyFactory, MessageFactory
from tests.msglog.providers.twilio.twilio_posts import status_params

# The providers sign with these secrets, over the canonical URL.
pytestmark = pytest.mark.usefixtures("webhook_settings")

# Yesterday, to the minute: Twilio's RawDlrDoneDate carries minutes, no seconds.
T0 = ago(days=1).replace(second=0)
SMS_WORDS = ["queued", "sent", "delivered", "undelivered", "failed"]
EMAIL_WORDS = ["sent", "delivered", "opened", "clicked", "bounced", "deferred", "complained"]
ERRORS = {"undelivered": "30003", "failed": "30005"}


def world(company, sms: int = 3, email: int = 2) -> list[Message]:
    """A running batch of messages already handed to their providers."""
    batch = BatchFactory(company=company, channel="sms", total_count=sms + email)
    messages = [
        MessageFactory(
            company=company,
            channel="sms",
            to_address=f"+1415555{i:04d}",
            provider="twilio",
            provider_message_id=f"SM{company.pk:04d}{i:028d}",
            status="sent",
            batch=batch,
            created_at=T0,
            segments=2,
            credits=2,
        )
        for i in range(sms)
    ] + [
        MessageFactory(
            company=company,
            channel="email",
            to_address=f"p{i}@example.org",
            provider="anymail",
            provider_message_id=f"esp-{company.pk}-{i}",
            status="sent",
            batch=batch,
            created_at=T0,
        )
        for i in range(email)
    ]
    with scopes_disabled():
        rollups.rebuild([company.pk])
        Batch.objects.filter(pk=batch.pk).update(sent_count=sms + email)
    return messages


def sms_report(message: Message, word: str, minute: int) -> inbound_reports.Incoming:
    at = T0 + timedelta(minutes=minute)
    form = status_params(
        message.provider_message_id, word, to=message.to_address,
        RawDlrDoneDate=at.strftime("%y%m%d%H%M"), ErrorCode=ERRORS.get(word, ""),
    )  # fmt: skip
    return status_report(form)


def email_report(message: Message, word: str, minute: int) -> inbound_reports.Incoming:
    event = AnymailTrackingEvent(
        event_type=word,
        timestamp=T0 + timedelta(minutes=minute),
        message_id=message.provider_message_id,
        event_id=f"{message.provider_message_id}-{word}-{minute}",
        recipient=message.to_address,
        esp_event={"event": word, "minute": minute},
    )
    return tracking_report(event, "Postmark")


def report_of(message: Message, word: str, minute: int) -> inbound_reports.Incoming:
    maker = sms_report if message.channel == "sms" else email_report
    return maker(message, word, minute)


def outcome(company) -> dict:
    """Everything the reports decide, in a form two companies can be compared by."""
    with scopes_disabled():
        messages = list(Message.objects.filter(company=company).order_by("pk"))
        batches = list(Batch.objects.filter(company=company).order_by("pk"))
        rollup_rows = sorted(
            (r.day, r.channel, r.status, r.messages, r.segments, r.credits)
            for r in DailyRollup.objects.filter(company=company)
            if r.messages or r.segments or r.credits
        )
        event_counts = [StatusEvent.objects.filter(message=m).count() for m in messages]
    return {
        "messages": [tuple(getattr(m, f) for f in DERIVED_FIELDS) for m in messages],
        "events": event_counts,
        "batches": [
            (b.sent_count, b.delivered_count, b.opened_count, b.failed_count, b.canceled_count)
            for b in batches
        ],
        "rollups": rollup_rows,
    }


def counters_from_statuses(company) -> dict:
    """What the batch counters must say, counted from the messages' statuses."""
    with scopes_disabled():
        statuses = Counter(Message.objects.filter(company=company).values_list("status", flat=True))
    return batch_counters.counters_for(statuses)


def feed(stream: list[inbound_reports.Incoming], batch_sizes: list[int]) -> None:
    """Store the stream in chunks, a worker applying a batch of its own size in between."""
    sizes = iter(batch_sizes or [len(stream) or 1])
    position = 0
    while position < len(stream):
        size = next(sizes, 5)
        inbound_reports.store(stream[position : position + size])
        inbound_reports.apply_pending(limit=max(1, size // 2 + 1))
        position += size
    inbound_reports.apply_all()


def in_rollback(fn):
    """Run fn in a transaction that is rolled back: each example starts from scratch."""
    result = {}
    with transaction.atomic():
        result = fn()
        transaction.set_rollback(True)
    return result


event_plans = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 6), st.integers(0, 40)), min_size=1, max_size=25
)


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=event_plans,
    seed=st.randoms(use_true_random=False),
    batch_sizes=st.lists(st.integers(1, 12), max_size=8),
)
def test_any_shuffled_duplicated_stream_ends_like_the_ordered_one(plan, seed, batch_sizes):
    def run(shuffled: bool) -> dict:
        company = CompanyFactory(slug="stream", name="Stream")
        messages = world(company)
        stream = []
        for index, word_index, minute in plan:
            message = messages[index]
            words = SMS_WORDS if message.channel == "sms" else EMAIL_WORDS
            stream.append(report_of(message, words[word_index % len(words)], minute))
        if shuffled:
            stream = stream + [seed.choice(stream) for _ in range(len(stream) // 2 + 1)]
            seed.shuffle(stream)
            feed(stream, batch_sizes)
        else:
            stream.sort(key=lambda r: r.provider_time)
            inbound_reports.store(stream)
            inbound_reports.apply_all()
        figures = outcome(company)
        figures["expected_counters"] = counters_from_statuses(company)
        return figures

    ordered = in_rollback(lambda: run(False))
    shuffled = in_rollback(lambda: run(True))
    assert shuffled == ordered
    assert sum(ordered["events"]) >= 1  # the stream did reach the messages
    counters = ordered["expected_counters"]
    assert ordered["batches"] == [
        (
            counters["sent_count"],
            counters["delivered_count"],
            counters["opened_count"],
            counters["failed_count"],
            counters["canceled_count"],
        )
    ]


def burst(messages: list[Message], rng: random.Random) -> list[inbound_reports.Incoming]:
    stream = []
    for minute in range(30):
        for message in messages:
            words = SMS_WORDS if message.channel == "sms" else EMAIL_WORDS
            stream.append(report_of(message, rng.choice(words), minute))
    rng.shuffle(stream)
    return stream


def rebuilt_rollups(company) -> list:
    """The rollups as counting the log from scratch gives them."""
    with scopes_disabled():
        kept = outcome(company)["rollups"]
        rollups.rebuild([company.pk])
        rebuilt = outcome(company)["rollups"]
    return kept, rebuilt


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_workers_applying_one_burst_at_once_end_like_one_worker():
    alone, together = CompanyFactory(slug="alone"), CompanyFactory(slug="together")
    alone_messages, together_messages = world(alone, 6, 4), world(together, 6, 4)

    inbound_reports.store(burst(alone_messages, random.Random(7)))
    inbound_reports.apply_all(limit=25)

    # The same burst, stored twice over (a provider's retries) by two web processes
    # while two workers apply it in small batches at the same time.
    stream = burst(together_messages, random.Random(7))
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(half: list[inbound_reports.Incoming]) -> None:
        try:
            start.wait()
            for i in range(0, len(half), 20):
                inbound_reports.store(half[i : i + 20])
                inbound_reports.apply_pending(limit=15)
            inbound_reports.apply_all(limit=15)
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(stream[::-1],)),
        threading.Thread(target=worker, args=(stream,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    inbound_reports.apply_all()

    with scopes_disabled():
        assert not InboundReport.objects.filter(state="pending").exists()
    mine, theirs = outcome(alone), outcome(together)
    # Same events, same statuses and times (message by message), counters and rollups.
    assert theirs["events"] == mine["events"]
    assert theirs["messages"] == mine["messages"]
    assert theirs["batches"] == mine["batches"]
    assert theirs["rollups"] == mine["rollups"]
    kept, rebuilt = rebuilt_rollups(together)
    assert kept == rebuilt


@pytest.mark.django_db
def test_applied_reports_are_pruned_after_a_week_and_erasure_deletes_by_address(acme):
    (message,) = world(acme, 1, 0)
    inbound_reports.store([sms_report(message, "delivered", 1)])
    inbound_reports.apply_all()
    with scopes_disabled():
        InboundReport.objects.update(received_at=timezone.now() - timedelta(days=8))
    assert inbound_reports.prune() == 1
    inbound_reports.store([sms_report(message, "delivered", 2)])
    with scopes_disabled():
        counts = erasure.erase(erasure.target_for_address(acme, message.to_address))
    assert counts["msglog.InboundReport"] == 1
    assert InboundReport.objects.count() == 0


@pytest.mark.django_db
def test_the_worker_task_applies_what_the_webhooks_stored(acme):
    (message,) = world(acme, 1, 0)
    inbound_reports.store([sms_report(message, "delivered", 1), sms_report(message, "sent", 0)])
    assert apply_provider_reports(linger=0.0) == {"applied": 2}
    with scopes_disabled():
        message.refresh_from_db()
    assert (message.status, message.sent_at) == ("delivered", T0)


@pytest.mark.django_db
def test_one_batch_finds_the_messages_of_hundreds_of_reports(acme):
    messages = world(acme, 150, 0)
    inbound_reports.store([sms_report(message, "delivered", 1) for message in messages])
    assert inbound_reports.apply_pending(limit=1000) == {"applied": 150}
    with scopes_disabled():
        assert set(Message.objects.values_list("status", flat=True)) == {"delivered"}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL plan")
@pytest.mark.django_db
def test_the_messages_of_hundreds_of_reports_are_found_in_the_provider_id_index(acme):
    # Past 100 ids PostgreSQL no longer proves the partial index applies from the list
    # alone: without the index's condition beside it, the lookup reads the whole table.
    provider_ids = sorted(message.provider_message_id for message in world(acme, 150, 0))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small enough
    with scopes_disabled():
        plan = inbound_reports.messages_with_ids(provider_ids, []).explain()
    assert "msg_provider_id" in plan
