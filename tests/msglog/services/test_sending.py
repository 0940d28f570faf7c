"""Sending: the checks, credits, and handing each message to its provider at most once."""

from __future__ import annotations

import pytest
import redis
from django.db import transaction
from django_scopes import scope, scopes_disabled

from companies.models import Company, CreditLedgerEntry
from msglog.models import DailyRollup, Message, SimulatedSend, StatusEvent
from msglog.queries import suppressions
from msglog.services import rollups, sending
from msglog.services.events import new_event
from msglog.services.sending import Content, Recipient
from tests.checks import ledger_matches_balance, stored_fields_match_events
from tests.factories import BatchFactory, ContactFactory, SuppressionFactory
from tests.fakes import fake_twilio  # noqa: F401  (the fixture)
from tests.sends import email, sms
from tests.threads import in_threads

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


# --- Races on PostgreSQL, with real threads --------------------------------------------


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
    assert len(people) > suppressions.WHOLE_LIST_ABOVE
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
