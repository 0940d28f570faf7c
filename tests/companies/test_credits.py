"""SMS credits: operators top up, the ledger explains every movement and always sums to
the balance (even under concurrent sends, refunds and top-ups), accountants report."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled

from companies import credits
from companies.models import AuditEntry, Company, CreditLedgerEntry
from msglog.services import delivery, sending
from msglog.services.sending import Content, Recipient
from tests import checks
from tests.threads import in_threads


def sms(company, to: str, text: str = "See you tomorrow at 10."):
    with scope(company=company.pk):
        return sending.send(
            company,
            channel="sms",
            recipient=Recipient(address=to, name="Pat Lee"),
            category="transactional",
            message_type="reminder",
            content=Content(text=text),
        )


@pytest.mark.django_db
def test_an_operator_tops_up_and_the_ledger_and_audit_say_so(acme, admin, operator):
    client = operator.client()
    client.post("/switch-company/", {"company": acme.pk})
    response = client.post("/settings/credits/", {"amount": "250", "note": "Invoice 2026-11"})
    assert response.status_code == 302
    acme.refresh_from_db()
    assert acme.sms_credit_balance == 250
    assert checks.ledger_matches_balance(acme)
    with scopes_disabled():
        entry = CreditLedgerEntry.objects.get(company=acme)
        audited = AuditEntry.objects.get(company=acme, action="credits_topped_up")
    assert (entry.kind, entry.amount, entry.created_by) == ("top_up", 250, operator.user)
    assert audited.details["amount"] == 250
    assert "Invoice 2026-11" in admin.client().get("/settings/credits/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("-50", "at least 1 credit"),
        ("0", "at least 1 credit"),
        ("1000001", "at most 1,000,000 credits"),
        ("99999999999999999999", "at most 1,000,000 credits"),
        ("12.5", "whole number"),
        ("lots", "whole number"),
    ],
)
def test_negative_or_absurd_top_ups_are_refused(acme, operator, amount, words):
    client = operator.client()
    client.post("/switch-company/", {"company": acme.pk})
    response = client.post("/settings/credits/", {"amount": amount})
    assert response.status_code == 400
    assert words in response.content.decode()
    acme.refresh_from_db()
    assert acme.sms_credit_balance == 0
    with scopes_disabled():
        assert not CreditLedgerEntry.objects.exists()


def test_the_module_refuses_what_the_form_would(db, acme):
    for amount in (0, -1, credits.MAX_TOP_UP + 1, True):
        with pytest.raises(credits.CreditError):
            credits.top_up(acme, amount)


@pytest.mark.django_db
def test_company_admins_see_credits_but_cannot_top_up(acme, admin, accountant, viewer):
    client = admin.client()
    page = client.get("/settings/credits/").content.decode()
    assert "Balance" in page and "Add credits" not in page
    assert client.post("/settings/credits/", {"amount": "1000"}).status_code == 403
    assert accountant.client().get("/settings/credits/").status_code == 200
    assert viewer.client().get("/settings/credits/").status_code == 403
    acme.refresh_from_db()
    assert acme.sms_credit_balance == 0


@pytest.mark.django_db
def test_the_ledger_links_each_charge_to_its_message_and_refunds_it(acme, accountant):
    credits.top_up(acme, 10)
    message = sms(acme, "+14155550123", "x" * 200)  # two segments
    with scope(company=acme.pk):
        delivery.refund(message)
    page = accountant.client().get("/settings/credits/").content.decode()
    assert message.get_absolute_url() in page
    assert "-2" in page and "+2" in page and "+10" in page
    (month,) = credits.use_per_month(acme)
    assert (month.charged, month.refunded, month.used, month.topped_up) == (2, 2, 0, 10)
    assert checks.ledger_matches_balance(acme)


@pytest.mark.django_db
def test_the_logs_page_warns_when_credits_run_low_without_an_extra_query(acme, admin):
    client = admin.client()
    credits.top_up(acme, 1000)
    with CaptureQueriesContext(connection) as plenty:
        page = client.get("/logs/").content.decode()
    assert "SMS credits are low" not in page
    Company.objects.filter(pk=acme.pk).update(sms_credit_balance=12)
    with CaptureQueriesContext(connection) as low:
        page = client.get("/logs/").content.decode()
    assert "SMS credits are low" in page and "12" in page
    assert len(low) == len(plenty)
    Company.objects.filter(pk=acme.pk).update(sms_enabled=False)
    assert "SMS credits are low" not in client.get("/logs/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_ledger_sums_to_the_balance_under_concurrent_sends_refunds_and_top_ups(acme):
    """PostgreSQL, real threads: 30 sends, 10 top-ups and refunds of every other sent
    message race each other; the balance never goes negative and the ledger explains it."""
    credits.top_up(acme, 15)

    def work(i: int):
        if i % 4 == 0:
            return credits.top_up(Company.objects.get(pk=acme.pk), 3)
        message = sms(acme, f"+1415555{i:04d}")
        if i % 2 and message.status == "queued":
            with scope(company=acme.pk):
                delivery.refund(message)
        return message.status

    results = in_threads(40, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    acme.refresh_from_db()
    assert acme.sms_credit_balance >= 0
    assert checks.ledger_sum(acme) == acme.sms_credit_balance
    assert checks.ledger_matches_balance(acme)
    assert acme.sms_credit_balance == 15 + 10 * 3 - sum(
        1 for i, r in enumerate(results) if i % 4 and r == "queued" and not i % 2
    )
