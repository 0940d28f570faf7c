"""Sending: the checks, credits, and handing each message to its provider at most once."""

from __future__ import annotations

import gc
import json
import threading
from datetime import timedelta

import pytest
import redis
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django_scopes import scope, scopes_disabled
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from companies.models import Company, CreditLedgerEntry
from msglog import rollups, sending, tasks
from msglog.events import new_event
from msglog.models import DailyRollup, Message, SimulatedSend, StatusEvent, Suppression
from msglog.providers.simulator import SimulatorProvider
from msglog.sending import Content, Recipient
from msglog.statuses import EventFact, derive
from tests.factories import BatchFactory, ContactFactory, SuppressionFactory
from tests.fakes import fake_twilio  # noqa: F401  (the fixture)


def sms(company, to: str, text: str = "Your appointment is tomorrow at 10:00.", **kwargs):
    return sending.send(
        company,
        channel="sms",
        recipient=Recipient(address=to, name="Pat Lee"),
        category="transactional",
        message_type="reminder",
        content=Content(text=text),
        **kwargs,
    )


def email(company, to: str, **kwargs):
    return sending.send(
        company,
        channel="email",
        recipient=Recipient(address=to, name="Pat Lee"),
        category=kwargs.pop("category", "transactional"),
        message_type="confirmation",
        content=Content(
            subject="Booked, {{ first_name }}",
            text="See you {{ first_name }}.",
            html="<p>See you {{ first_name }}.</p>",
        ),
        **kwargs,
    )


@pytest.fixture
def funded(acme):
    """Acme with 20 SMS credits, topped up through the ledger."""
    with scopes_disabled():
        Company.objects.filter(pk=acme.pk).update(sms_credit_balance=20)
        CreditLedgerEntry.objects.create(company=acme, kind="top_up", amount=20, balance_after=20)
    acme.refresh_from_db()
    return acme


def ledger_matches_balance(company) -> bool:
    with scopes_disabled():
        total = CreditLedgerEntry.objects.filter(company=company).aggregate(s=Sum("amount"))["s"]
    company.refresh_from_db()
    return (total or 0) == company.sms_credit_balance


def stored_fields_match_events(message) -> bool:
    with scopes_disabled():
        message.refresh_from_db()
        facts = [
            EventFact(
                e.dedupe_key, e.status, e.occurred_at, e.error_code, e.error_message, e.reason
            )
            for e in StatusEvent.objects.filter(message=message)
        ]
    derived = derive(facts).as_fields()
    return all(getattr(message, k) == v for k, v in derived.items())


# --- Recording and the checks ------------------------------------------------------------


@pytest.mark.django_db
def test_an_sms_is_recorded_charged_and_queued(funded):
    with scope(company=funded.pk):
        message = sms(funded, "(415) 555-0123")
    assert message.status == "queued"
    assert message.to_address == "+14155550123"  # E.164, read in the company's region
    assert (message.segments, message.encoding, message.credits) == (1, "GSM-7", 1)
    assert ledger_matches_balance(funded) and funded.sms_credit_balance == 19
    assert stored_fields_match_events(message)


@pytest.mark.django_db
def test_a_template_is_rendered_with_the_recipients_details(acme):
    with scope(company=acme.pk):
        message = email(acme, "pat@example.org")
    assert message.subject == "Booked, Pat"
    assert message.body_html == "<p>See you Pat.</p>"


@pytest.mark.django_db
def test_unicode_text_costs_ucs2_segments(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123", text="Zażółć gęślą jaźń " * 5)  # 90 chars
    assert (message.segments, message.encoding, message.credits) == (2, "UCS-2", 2)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setup", "to", "status", "reason"),
    [
        ("sms_off", "not a number", "channel_disabled", "SMS is disabled"),
        (None, "12", "invalid_recipient", "not a valid phone number"),
        ("suppressed", "+14155550123", "suppressed", "Hard bounce"),
        ("broke", "+14155550123", "insufficient_credits", "the balance was 0"),
    ],
)
def test_the_first_failing_check_is_the_status_and_nothing_is_sent(
    funded, setup, to, status, reason
):
    with scopes_disabled():
        if setup == "sms_off":
            Company.objects.filter(pk=funded.pk).update(sms_enabled=False)
        if setup == "suppressed":
            SuppressionFactory(company=funded, channel="sms", address="+14155550123")
        if setup == "broke":
            Company.objects.filter(pk=funded.pk).update(sms_credit_balance=0)
            CreditLedgerEntry.objects.create(
                company=funded, kind="adjustment", amount=-20, balance_after=0
            )
    funded.refresh_from_db()
    with scope(company=funded.pk):
        message = sms(funded, to)
    assert message.status == status
    assert reason in message.status_reason
    assert message.credits == 0 and ledger_matches_balance(funded)
    assert not SimulatedSend.objects.exists()
    assert stored_fields_match_events(message)


@pytest.mark.django_db
def test_a_marketing_opt_out_suppresses_marketing_only(acme):
    contact = ContactFactory(company=acme, email="opt@example.org", marketing_opt_out=True)
    with scope(company=acme.pk):
        promo = sending.send(
            acme,
            channel="email",
            recipient=Recipient(contact=contact),
            category="marketing",
            message_type="marketing",
            content=Content(text="Sale"),
        )
        receipt = sending.send(
            acme,
            channel="email",
            recipient=Recipient(contact=contact),
            category="transactional",
            message_type="invoice",
            content=Content(text="Paid"),
        )
    assert promo.status == "suppressed" and receipt.status == "queued"
    assert receipt.to_address == "opt@example.org" and receipt.contact == contact


@pytest.mark.django_db
def test_the_same_idempotency_key_sends_once(funded):
    with scope(company=funded.pk):
        first = sms(funded, "+14155550123", idempotency_key="appointment-77-reminder")
        again = sms(funded, "+14155550123", idempotency_key="appointment-77-reminder")
        assert first.pk == again.pk
        assert Message.objects.count() == 1
    assert ledger_matches_balance(funded) and funded.sms_credit_balance == 19


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_send_publishes_no_task(funded, settings):
    if not settings.REDIS_URL:
        pytest.skip("needs the Redis broker")
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete("sms")
    with pytest.raises(RuntimeError), scope(company=funded.pk), transaction.atomic():
        sms(funded, "+14155550123")
        raise RuntimeError("the request failed after the send")
    assert broker.llen("sms") == 0
    with scopes_disabled():
        assert not Message.objects.exists()
    with scope(company=funded.pk):
        sms(funded, "+14155550123")
    assert broker.llen("sms") == 1
    broker.delete("sms")


# --- Handing over -----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_worker_hands_a_message_over_once(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        assert sending.deliver(message.pk) == "sent"
        assert sending.deliver(message.pk) == "not ours"  # a redelivered task changes nothing
        message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id.startswith("SM")
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1
    assert stored_fields_match_events(message)


@pytest.mark.django_db
def test_a_busy_provider_is_tried_again_and_sends_once(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550003")  # the simulator is busy once for ...0003
        with pytest.raises(sending.RetryLater) as retry:
            sending.deliver(message.pk)
        assert 0 < retry.value.countdown <= sending.MAX_BACKOFF_SECONDS
        assert sending.deliver(message.pk, attempt=1) == "sent"
        assert sending.deliver(message.pk, attempt=1) == "not ours"  # a duplicate retry task
        message.refresh_from_db()
        words = list(message.events.values_list("event", flat=True))
    assert message.status == "sent" and message.attempts == 2
    assert "retry" in words
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1


@pytest.mark.django_db
def test_a_refused_number_ends_never_sent_and_its_credits_come_back(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550002")  # the simulator: not a mobile number
        assert sending.deliver(message.pk) == "invalid_recipient"
        message.refresh_from_db()
    assert message.error_code == "21614" and message.credits == 0
    assert ledger_matches_balance(funded) and funded.sms_credit_balance == 20
    with scopes_disabled():
        assert CreditLedgerEntry.objects.filter(message=message, kind="refund").count() == 1


@pytest.mark.django_db
def test_a_lost_answer_is_settled_by_asking_the_provider_not_by_sending_again(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        claimed = sending.claim(message.pk)
        # The provider took it, but the worker died before it heard the answer.
        SimulatorProvider("sms").send(sending.outgoing_for(claimed, claimed.attempts))
        claimed.refresh_from_db()
        assert sending.reconcile(claimed) == "delivered"
        message.refresh_from_db()
    assert message.status == "delivered" and message.provider_message_id.startswith("SM")
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1


@pytest.mark.django_db
def test_a_message_the_provider_never_got_is_sent_again(funded, django_capture_on_commit_callbacks):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        claimed = sending.claim(message.pk)  # the worker died before calling the provider
        with django_capture_on_commit_callbacks(execute=False) as published:
            assert sending.reconcile(claimed) == "resent"
        assert len(published) == 1
        assert sending.deliver(message.pk, attempt=claimed.attempts) == "sent"
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1


@pytest.mark.django_db
def test_scheduled_messages_wait_for_their_time(funded):
    later = timezone.now() + timedelta(hours=2)
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123", scheduled_for=later)
        assert message.status == "scheduled"
        assert sending.dispatch_due(now=timezone.now()) == 0
        assert sending.dispatch_due(now=later + timedelta(seconds=1)) == 1
        message.refresh_from_db()
    assert message.status == "queued"
    assert stored_fields_match_events(message)


@pytest.mark.django_db
def test_an_opt_out_reported_by_the_provider_suppresses_the_number(funded):
    contact = ContactFactory(company=funded, phone="+14155550123")
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        claimed = sending.claim(message.pk)
        from msglog.providers.base import PermanentError

        sending._permanent(
            claimed,
            PermanentError("Unsubscribed recipient", code="21610", status="suppressed"),
            source="twilio",
        )
    with scopes_disabled():
        assert Suppression.objects.filter(channel="sms", address="+14155550123").exists()
        contact.refresh_from_db()
    assert contact.sms_opted_out


# --- Races on PostgreSQL, with real threads --------------------------------------------


def in_threads(n: int, work) -> list:
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as error:
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_message_make_one_provider_call(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")

    def worker(_):
        with scope(company=funded.pk):
            return sending.deliver(message.pk)

    outcomes = in_threads(8, worker)
    assert sorted(outcomes) == ["not ours"] * 7 + ["sent"]
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_sends_never_overspend_ten_credits(acme):
    with scopes_disabled():
        Company.objects.filter(pk=acme.pk).update(sms_credit_balance=10)
        CreditLedgerEntry.objects.create(company=acme, kind="top_up", amount=10, balance_after=10)

    def send_one(i):
        with scope(company=acme.pk):
            return sms(acme, f"+1415555{i:04d}").status

    statuses = in_threads(50, send_one)
    assert statuses.count("queued") == 10
    assert statuses.count("insufficient_credits") == 40
    acme.refresh_from_db()
    assert acme.sms_credit_balance == 0
    assert ledger_matches_balance(acme)


@pytest.mark.django_db
def test_a_message_that_never_gets_a_report_is_settled_by_polling(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550005")  # the simulator never reports on ...0005
        assert sending.deliver(message.pk) == "sent"
        message.refresh_from_db()
        assert sending.poll_sent(now=timezone.now()) == {}  # too soon to ask
        later = timezone.now() + sending.POLL_SENT_AFTER + timedelta(seconds=1)
        assert sending.poll_sent(now=later) == {"delivered": 1}
        assert sending.poll_sent(now=later) == {}  # asked once per round
        message.refresh_from_db()
        sources = set(message.events.values_list("source", flat=True))
    assert message.status == "delivered" and "poll" in sources


@pytest.mark.django_db
def test_a_big_send_records_each_message_as_a_single_send_would(funded, django_user_model):
    """250 recipients go through COPY on PostgreSQL; every row must read as if sent alone."""
    assert len(range(250)) >= sending.COPY_FROM
    user = django_user_model.objects.create(username="bulk.sender")
    batch = BatchFactory(company=funded, channel="sms")
    SuppressionFactory(company=funded, channel="sms", address="+14155550009")
    opted_out = ContactFactory(company=funded, phone="+14155550010", sms_opted_out=True)
    people = []
    for i in range(250):
        if i == 10:
            people.append(Recipient(contact=opted_out, name="Opted Out"))
        else:
            number = "12" if i == 7 else f"+1415555{i:04d}"
            people.append(Recipient(address=number, name=f"Pat {i}", context={"n": i}))
    with scope(company=funded.pk):
        messages = sending.send_many(
            funded,
            channel="sms",
            recipients=people,
            category="transactional",
            message_type="reminder",
            content=Content(text="Hi {{ first_name }}, slot {{ n }}."),
            batch=batch,
            created_by=user,
            metadata={"source": "import"},
        )
    with scopes_disabled():
        stored = {m.pk: m for m in Message.objects.filter(company=funded)}
        assert len(stored) == len(messages) == 250
        for message in messages:  # what send_many returned is what was stored
            row = stored[message.pk]
            for field in Message._meta.concrete_fields:
                assert getattr(message, field.attname) == getattr(row, field.attname), field
        by_status = {}
        for message in stored.values():
            by_status[message.status] = by_status.get(message.status, 0) + 1
        # 20 credits: the first 20 sendable ones are queued, the rest are short of credits.
        assert by_status == {
            "queued": 20,
            "invalid_recipient": 1,
            "suppressed": 2,
            "insufficient_credits": 227,
        }
        assert stored[messages[3].pk].body_text == "Hi Pat, slot 3."
        assert stored[messages[3].pk].metadata == {"source": "import"}
        assert stored[messages[10].pk].to_address == "+14155550010"
        assert stored[messages[10].pk].status_reason == "The contact opted out of SMS."
        assert {m.batch_id for m in stored.values()} == {batch.pk}
        assert {m.created_by_id for m in stored.values()} == {user.pk}
        # Two events for a refused message (queued, then why), one for a queued one.
        assert StatusEvent.objects.filter(company=funded).count() == 20 + 2 * 230
        assert all(stored_fields_match_events(m) for m in messages[:12])
        batch.refresh_from_db()
        assert (batch.total_count, batch.failed_count) == (250, 230)
        counted = {
            (r.status, r.messages, r.credits) for r in DailyRollup.objects.filter(company=funded)
        }
        rollups.rebuild([funded.pk])
        rebuilt = {
            (r.status, r.messages, r.credits) for r in DailyRollup.objects.filter(company=funded)
        }
        assert counted == rebuilt
    assert ledger_matches_balance(funded) and funded.sms_credit_balance == 0


@pytest.mark.django_db
def test_a_big_send_writes_the_first_events_a_single_send_would(funded):
    """The database writes a COPY send's first events; they must be exactly the events
    the ORM path makes with new_event (same dedupe keys, so a replay is stored once)."""
    people = [Recipient(address=f"+1415555{i:04d}", name=f"Pat {i}") for i in range(250)]
    people[5] = Recipient(address="12", name="Bad Number")
    with scope(company=funded.pk):
        messages = sending.send_many(
            funded,
            channel="sms",
            recipients=people,
            category="transactional",
            message_type="reminder",
            content=Content(text="See you tomorrow."),
        )
    fields = [f.attname for f in StatusEvent._meta.concrete_fields if not f.primary_key]
    with scopes_disabled():
        stored = sorted(
            tuple(getattr(e, name) for name in fields)
            for e in StatusEvent.objects.filter(message__in=[m.pk for m in messages])
        )
    expected = sorted(
        tuple(getattr(event, name) for name in fields)
        for m in messages
        for status, reason in sending.first_events(
            {"status": m.status, "status_reason": m.status_reason}, "queued"
        )
        for event in [
            new_event(
                m,
                status,
                occurred_at=m.created_at,
                received_at=m.created_at,
                reason=reason,
                key_parts=(m.public_id, status, m.created_at.isoformat()),
            )
        ]
    )
    assert len(stored) == 20 + 2 * 230  # 20 credits: queued; the rest refused, with why
    assert stored == expected


@pytest.mark.django_db
def test_a_send_bigger_than_the_suppression_list_checks_every_address_against_it(acme):
    """Above 1,000 recipients the company's whole (shorter) list is read once and each
    address is normalized as its row is written: the verdicts are a small send's."""
    for address in ("c7@example.org", "c900@example.org", "unused@example.org"):
        SuppressionFactory(company=acme, channel="email", address=address)
    people = [Recipient(address=f"c{i}@Example.ORG ", name=f"C {i}") for i in range(1_100)]
    people[3] = Recipient(address="not an address", name="Bad")
    assert len(people) > sending.WHOLE_LIST_ABOVE
    with scope(company=acme.pk):
        messages = sending.send_many(
            acme,
            channel="email",
            recipients=people,
            category="transactional",
            message_type="reminder",
            content=Content(subject="Hi", text="Hello"),
        )
    refused = {m.to_address: m.status for m in messages if m.status != "queued"}
    assert refused == {
        "not an address": "invalid_recipient",
        "c7@example.org": "suppressed",
        "c900@example.org": "suppressed",
    }
    assert messages[10].to_address == "c10@example.org"  # normalized: trimmed, domain lower


def test_a_bulk_send_pauses_the_garbage_collector_and_restores_it():
    assert gc.isenabled()
    with sending.gc_paused():
        assert not gc.isenabled()
        with sending.gc_paused():  # nested: the outer one restores it
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), sending.gc_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_overlapping_pauses_in_two_threads_keep_the_collector_off_until_the_last_ends():
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen_by_second: list[bool] = []

    def first():
        with sending.gc_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with sending.gc_paused():
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


@pytest.mark.django_db
def test_a_delivered_chunk_reads_as_its_events_say_and_its_rollups_add_up(funded):
    """A worker's chunk is claimed, handed over and recorded set-wise; each message and
    the daily counts must still be exactly what its events and the log say."""
    numbers = ["+14155550123", "+14155550002", "+14155550003", "+14155550124", "+14155550125"]
    with scope(company=funded.pk):
        messages = sending.send_many(
            funded,
            channel="sms",
            recipients=[Recipient(address=n, name="Pat Lee") for n in numbers],
            category="transactional",
            message_type="reminder",
            content=Content(text="See you tomorrow."),
        )
        outcomes = sending.deliver_many(funded.pk, [m.pk for m in messages])
        again = sending.deliver_many(funded.pk, [m.pk for m in messages])
    # 0002 is refused as not a mobile number, 0003 is busy once and will be tried again.
    assert outcomes == ["sent", "invalid_recipient", "retry", "sent", "sent"]
    assert set(again) == {"not ours"}  # a redelivered task claims nothing
    with scopes_disabled():
        assert SimulatedSend.objects.count() == 3
        stored = {m.pk: m for m in Message.objects.filter(company=funded)}
        assert [stored[m.pk].status for m in messages] == [
            "sent",
            "invalid_recipient",
            "sending",
            "sent",
            "sent",
        ]
        assert stored[messages[0].pk].sent_at and stored[messages[0].pk].provider_message_id
        assert all(stored_fields_match_events(m) for m in messages)
        counted = {(r.status, r.messages) for r in DailyRollup.objects.filter(company=funded)}
        rollups.rebuild([funded.pk])
        rebuilt = {(r.status, r.messages) for r in DailyRollup.objects.filter(company=funded)}
        assert {c for c in counted if c[1]} == rebuilt
    assert ledger_matches_balance(funded)


@pytest.mark.django_db
def test_the_daily_reconciliation_stores_what_twilio_says_and_a_callback_missed(
    funded,
    settings,
    fake_twilio,  # noqa: F811
):
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = fake_twilio.account_sid
    settings.TWILIO_AUTH_TOKEN = fake_twilio.auth_token
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_API_BASE_URL = fake_twilio.base_url
    yesterday = timezone.now() - timedelta(days=1)
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        assert sending.deliver(message.pk) == "sent"
        message.refresh_from_db()
    # Twilio delivered it yesterday; its status callback never reached us.
    fake_twilio.set_status(message.provider_message_id, "delivered", at=yesterday)
    other = fake_twilio.add_message("+14155550999", "Not one of ours")
    fake_twilio.set_status(other["sid"], "delivered", at=yesterday)

    with scopes_disabled():
        assert sending.reconcile_day(yesterday.date()) == {
            "updated": 1,
            "unchanged": 0,
            "not ours": 1,
        }
        assert sending.reconcile_day(yesterday.date())["updated"] == 0  # once is enough
    message.refresh_from_db()
    assert message.status == "delivered"
    assert stored_fields_match_events(message)
    with scopes_disabled():
        assert StatusEvent.objects.filter(message=message, source="poll").count() == 1
    assert len(fake_twilio.calls) == 1  # asked, never sent again


@pytest.mark.django_db
def test_twilio_credentials_never_show_in_a_log_line_or_on_the_message_page(
    funded,
    support,
    settings,
    fake_twilio,  # noqa: F811
    caplog,
):
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = fake_twilio.account_sid
    settings.TWILIO_AUTH_TOKEN = "wrong-token-" + "7" * 20  # Twilio answers 401, 20003
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_API_BASE_URL = fake_twilio.base_url
    caplog.set_level("DEBUG")
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        assert tasks.send_sms_chunk.run(funded.pk, [message.pk]) == ["failed"]
    message.refresh_from_db()
    assert message.error_code == "20003"
    page = support.client().get(message.get_absolute_url()).content.decode()
    with scopes_disabled():
        stored = [
            json.dumps([e.raw_payload, e.error_message])
            for e in StatusEvent.objects.filter(message=message)
        ]
    for secret in (settings.TWILIO_AUTH_TOKEN, fake_twilio.account_sid):
        assert secret not in caplog.text
        assert secret not in page
        assert all(secret not in text for text in stored)


@hypothesis_settings(deadline=None)  # the first call compiles the validator's patterns
@given(st.from_regex(r"[a-zA-Z0-9.\"@\[\]:_+ -]{0,12}@[a-zA-Z0-9.\[\]:-]{0,14}", fullmatch=True))
def test_an_address_is_valid_exactly_when_djangos_validator_says_so(address):
    try:
        validate_email(address.strip())
        valid = True
    except ValidationError:
        valid = False
    assert (sending.normalize_email(address) is not None) == valid
