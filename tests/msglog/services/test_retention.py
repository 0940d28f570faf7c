"""Retention: the nightly purge deletes what is past each company's period, in chunks,
keeps the rollup figures, and the Logs date filter says why it stops where it does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from companies import credits
from companies.models import Company, CreditLedgerEntry
from msglog.models import DailyRollup, Message, SimulatedSend, StatusEvent
from msglog.services import purging, retention, rollups, sending
from msglog.services.sending import Content, Recipient
from msglog.workers import tasks
from tests import checks
from tests.factories import MessageFactory, StatusEventFactory, SuppressionFactory


def aged(company, days: float, **kwargs):
    """A message created `days` ago with two events, counted in the rollups."""
    created = timezone.now() - timedelta(days=days)
    message = MessageFactory(company=company, created_at=created, status="delivered", **kwargs)
    StatusEventFactory(message=message, status="sent", occurred_at=created)
    StatusEventFactory(message=message, status="delivered", occurred_at=created)
    rollups.count_created([message])
    return message


def counts(company) -> tuple[int, int, int]:
    with scopes_disabled():
        return (
            Message.objects.filter(company=company).count(),
            StatusEvent.objects.filter(company=company).count(),
            sum(DailyRollup.objects.filter(company=company).values_list("messages", flat=True)),
        )


@pytest.mark.django_db
def test_the_purge_deletes_what_is_past_retention_and_keeps_the_figures(acme, rival):
    Company.objects.filter(pk=acme.pk).update(retention_days=7)
    acme.refresh_from_db()
    old = [aged(acme, 8 + i) for i in range(5)]
    recent = aged(acme, 6)
    rival_old = aged(rival, 8)  # Rival keeps 30 days: still within its period
    with scopes_disabled():
        suppression = SuppressionFactory(company=acme, message=old[0], address=old[0].to_address)
        ledger = CreditLedgerEntry.objects.create(
            company=acme, kind="adjustment", amount=0, balance_after=0, message=old[1]
        )
    SimulatedSend.objects.create(
        provider_message_id="sim-1",
        public_id=old[2].public_id,
        company_id=acme.pk,
        channel="email",
        to_address=old[2].to_address,
    )

    with scope(company=acme.pk):
        deleted = retention.purge_company(acme, chunk=2)
    assert deleted["msglog.Message"] == 5 and deleted["msglog.StatusEvent"] == 10
    assert counts(acme) == (1, 2, 6)  # one message left; rollups still count all six
    with scopes_disabled():
        assert Message.objects.get(company=acme) == recent
        assert Message.objects.filter(pk=rival_old.pk).exists()
        suppression.refresh_from_db()
        ledger.refresh_from_db()
    assert suppression.message is None  # the do-not-send entry outlives the message
    assert ledger.message is None and checks.ledger_matches_balance(acme)
    assert not SimulatedSend.objects.filter(public_id=old[2].public_id).exists()


@pytest.mark.django_db
def test_the_nightly_task_purges_every_company_and_can_run_twice(acme, rival, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    Company.objects.filter(pk=rival.pk).update(retention_days=1)
    aged(acme, 31)
    aged(acme, 29)
    aged(rival, 2)
    tasks.purge_expired_messages.apply()
    tasks.purge_expired_messages.apply()
    assert counts(acme)[:2] == (1, 2)
    assert counts(rival)[:2] == (0, 0)


@pytest.mark.django_db
def test_a_bounded_run_stops_after_its_chunks_and_the_next_continues(acme):
    for i in range(7):
        aged(acme, 40 + i)
    with scope(company=acme.pk):
        first = retention.purge_company(acme, chunk=3, max_chunks=1)
        assert first["msglog.Message"] == 3
        rest = retention.purge_company(acme, chunk=3)
    assert rest["msglog.Message"] == 4 and counts(acme)[0] == 0


@pytest.mark.django_db
def test_sending_keeps_working_after_a_purge_of_charged_messages(acme):
    credits.top_up(acme, 5)
    with scope(company=acme.pk):
        message = sending.send(
            acme,
            channel="sms",
            recipient=Recipient(address="+14155550123", name="Pat"),
            category="transactional",
            message_type="reminder",
            content=Content(text="Hello"),
        )
        Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(days=90))
        retention.purge_company(acme)
    assert checks.ledger_matches_balance(acme)  # the charge stays; only its link goes


@pytest.mark.django_db
def test_expiry_hooks_delete_old_company_files(acme, monkeypatch):
    seen = []
    monkeypatch.setitem(
        purging.EXPIRY_HOOKS, "tests.Export", lambda company_id, cutoff: seen.append(cutoff) or 3
    )
    with scope(company=acme.pk):
        deleted = retention.purge_company(acme)
    assert deleted["tests.Export"] == 3
    assert abs((timezone.now() - seen[0]) - timedelta(days=30)) < timedelta(minutes=1)


@pytest.mark.django_db
def test_the_logs_date_filter_cannot_reach_past_retention_and_says_why(acme, admin):
    Company.objects.filter(pk=acme.pk).update(retention_days=7)
    aged(acme, 2, to_address="recent@example.org")
    today = timezone.now().date()
    too_old = (today - timedelta(days=20)).isoformat()
    client = admin.client()
    page = client.get("/logs/", {"period": "custom", "date_from": too_old}).content.decode()
    assert "keeps messages for 7 days" in page
    assert f"Choose a date from {(today - timedelta(days=7)).isoformat()}" in page
    assert "recent@example.org" not in page  # an invalid filter shows nothing
    page = client.get("/logs/", {"period": "7d"}).content.decode()
    assert "recent@example.org" in page and "keeps messages" not in page
    assert f'min="{(today - timedelta(days=7)).isoformat()}"' in page
