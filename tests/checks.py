"""Invariants the tests check after a story: the ledger sums to the balance, an event's facts."""

from __future__ import annotations

from django.db.models import Sum
from django.db.models.functions import Coalesce
from django_scopes import scopes_disabled

from companies.models import Company, CreditLedgerEntry
from msglog.models import StatusEvent
from msglog.rules.statuses import EventFact, derive
from msglog.services.events import FACT_FIELDS


def ledger_sum(company: Company) -> int:
    with scopes_disabled():
        total = CreditLedgerEntry.objects.filter(company_id=company.pk).aggregate(
            total=Coalesce(Sum("amount"), 0)
        )["total"]
    return int(total)


def ledger_matches_balance(company: Company) -> bool:
    """The invariant: the ledger's amounts sum to the balance, and each entry's
    `balance_after` is the running sum up to it. `company` is refreshed from the
    database on the way (its balance as it is now)."""
    company.refresh_from_db()
    with scopes_disabled():
        balance = Company.objects.values_list("sms_credit_balance", flat=True).get(pk=company.pk)
        running = 0
        for amount, after in (
            CreditLedgerEntry.objects.filter(company_id=company.pk)
            .order_by("id")
            .values_list("amount", "balance_after")
        ):
            running += amount
            if running != after:
                return False
    return running == balance


def fact_of(event: StatusEvent) -> EventFact:
    return EventFact(*(getattr(event, name) for name in FACT_FIELDS))


def stored_fields_match_events(message) -> bool:
    """The message's stored status fields are what the status rule derives from its events."""
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
