"""Delivery: a worker claims a message, hands it to its provider at most once, and settles
what the provider answers — accepted, refused, busy, or an answer that was lost.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from companies.models import CreditLedgerEntry
from msglog.models import DailyRollup, Message, SimulatedSend, StatusEvent, Suppression
from msglog.providers.simulator.client import SimulatorProvider
from msglog.services import delivery, rollups, sending
from msglog.services.sending import Content, Recipient
from msglog.workers import tasks
from tests.checks import ledger_matches_balance, stored_fields_match_events
from tests.factories import ContactFactory
from tests.fakes import fake_twilio  # noqa: F401  (the fixture)
from tests.sends import sms
from tests.threads import in_threads


@pytest.mark.django_db
def test_a_worker_hands_a_message_over_once(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        assert delivery.deliver(message.pk) == "sent"
        assert delivery.deliver(message.pk) == "not ours"  # a redelivered task changes nothing
        message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id.startswith("SM")
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1
    assert stored_fields_match_events(message)


@pytest.mark.django_db
def test_a_busy_provider_is_tried_again_and_sends_once(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550003")  # the simulator is busy once for ...0003
        assert delivery.deliver(message.pk) == "retry"  # published again, after a backoff
        assert delivery.deliver(message.pk, attempt=1) == "sent"
        assert delivery.deliver(message.pk, attempt=1) == "not ours"  # a duplicate retry task
        message.refresh_from_db()
        words = list(message.events.values_list("event", flat=True))
    assert message.status == "sent" and message.attempts == 2
    assert "retry" in words
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1


def test_a_retry_waits_longer_each_attempt_but_never_past_the_brokers_patience():
    for attempt in range(1, 20):
        wait = delivery.backoff(attempt)
        assert 2**attempt / 2 <= wait or wait >= delivery.MAX_BACKOFF_SECONDS / 2
        assert 0 < wait <= delivery.MAX_BACKOFF_SECONDS
    assert delivery.backoff(1, retry_after=30) == 30  # what the provider asked for


@pytest.mark.django_db
def test_a_refused_number_ends_never_sent_and_its_credits_come_back(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550002")  # the simulator: not a mobile number
        assert delivery.deliver(message.pk) == "invalid_recipient"
        message.refresh_from_db()
    assert message.error_code == "21614" and message.credits == 0
    assert ledger_matches_balance(funded) and funded.sms_credit_balance == 20
    with scopes_disabled():
        assert CreditLedgerEntry.objects.filter(message=message, kind="refund").count() == 1


@pytest.mark.django_db
def test_a_lost_answer_is_settled_by_asking_the_provider_not_by_sending_again(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        claimed = delivery.claim(message.pk)
        # The provider took it, but the worker died before it heard the answer.
        SimulatorProvider("sms").send(delivery.outgoing_for(claimed, claimed.attempts))
        claimed.refresh_from_db()
        assert delivery.reconcile(claimed) == "delivered"
        message.refresh_from_db()
    assert message.status == "delivered" and message.provider_message_id.startswith("SM")
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1


@pytest.mark.django_db
def test_the_simulator_reports_back_only_once_its_answer_is_recorded(
    funded, django_capture_on_commit_callbacks
):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        claimed = delivery.claim(message.pk)
        provider = SimulatorProvider("sms")
        with django_capture_on_commit_callbacks(execute=False) as published:
            accepted = provider.send(delivery.outgoing_for(claimed, claimed.attempts))
        # A worker killed here leaves a message without its provider id: no report may
        # overtake the acceptance, or the log would show it delivered by nobody knows whom.
        assert published == []
        delivery.accept(claimed, accepted, source=provider.name)
        message.refresh_from_db()
        assert message.provider_message_id == accepted.provider_message_id
        with django_capture_on_commit_callbacks(execute=False) as published:
            provider.acceptance_recorded()
        assert len(published) == 1  # its delivery report, due in two seconds


@pytest.mark.django_db
def test_a_message_the_provider_never_got_is_sent_again(funded, django_capture_on_commit_callbacks):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        claimed = delivery.claim(message.pk)  # the worker died before calling the provider
        with django_capture_on_commit_callbacks(execute=False) as published:
            assert delivery.reconcile(claimed) == "resent"
        assert len(published) == 1
        assert delivery.deliver(message.pk, attempt=claimed.attempts) == "sent"
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1


@pytest.mark.django_db
def test_scheduled_messages_wait_for_their_time(funded):
    later = timezone.now() + timedelta(hours=2)
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123", scheduled_for=later)
        assert message.status == "scheduled"
        assert delivery.dispatch_due(now=timezone.now()) == 0
        assert delivery.dispatch_due(now=later + timedelta(seconds=1)) == 1
        message.refresh_from_db()
    assert message.status == "queued"
    assert stored_fields_match_events(message)


@pytest.mark.django_db
def test_an_opt_out_reported_by_the_provider_suppresses_the_number(funded):
    contact = ContactFactory(company=funded, phone="+14155550123")
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")
        claimed = delivery.claim(message.pk)
        from msglog.rules.provider_interface import PermanentError

        delivery._permanent(
            claimed,
            PermanentError("Unsubscribed recipient", code="21610", status="suppressed"),
            source="twilio",
        )
    with scopes_disabled():
        assert Suppression.objects.filter(channel="sms", address="+14155550123").exists()
        contact.refresh_from_db()
    assert contact.sms_opted_out


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_message_make_one_provider_call(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550123")

    def worker(_):
        with scope(company=funded.pk):
            return delivery.deliver(message.pk)

    outcomes = in_threads(8, worker)
    assert sorted(outcomes) == ["not ours"] * 7 + ["sent"]
    assert SimulatedSend.objects.filter(public_id=message.public_id).count() == 1


@pytest.mark.django_db
def test_a_message_that_never_gets_a_report_is_settled_by_polling(funded):
    with scope(company=funded.pk):
        message = sms(funded, "+14155550005")  # the simulator never reports on ...0005
        assert delivery.deliver(message.pk) == "sent"
        message.refresh_from_db()
        assert delivery.poll_sent(now=timezone.now()) == {}  # too soon to ask
        later = timezone.now() + delivery.POLL_SENT_AFTER + timedelta(seconds=1)
        assert delivery.poll_sent(now=later) == {"delivered": 1}
        assert delivery.poll_sent(now=later) == {}  # asked once per round
        message.refresh_from_db()
        sources = set(message.events.values_list("source", flat=True))
    assert message.status == "delivered" and "poll" in sources


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
        outcomes = delivery.deliver_many(funded.pk, [m.pk for m in messages])
        again = delivery.deliver_many(funded.pk, [m.pk for m in messages])
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
        assert delivery.deliver(message.pk) == "sent"
        message.refresh_from_db()
    # Twilio delivered it yesterday; its status callback never reached us.
    fake_twilio.set_status(message.provider_message_id, "delivered", at=yesterday)
    other = fake_twilio.add_message("+14155550999", "Not one of ours")
    fake_twilio.set_status(other["sid"], "delivered", at=yesterday)

    with scopes_disabled():
        assert delivery.reconcile_day(yesterday.date()) == {
            "updated": 1,
            "unchanged": 0,
            "not ours": 1,
        }
        assert delivery.reconcile_day(yesterday.date())["updated"] == 0  # once is enough
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
