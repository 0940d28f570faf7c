"""SMS credits: top-ups, the ledger, the low-balance warning and credits used per period.

The company's balance and its ledger move together, always in one transaction with the
company row locked, so the ledger's amounts sum to the balance.
Charges and refunds are written by `msglog.services.sending`, which holds the same lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db import transaction
from django.db.models import Case, Count, IntegerField, Q, Sum, Value, When
from django.db.models.functions import Coalesce, TruncMonth
from django_scopes import scopes_disabled

from companies import audit
from companies.models import Company, CreditLedgerEntry

# A balance below this shows a warning on the Logs page (one segment is one credit).
LOW_BALANCE = 50
# One top-up may not exceed this: a typo of three extra zeros must not go through.
MAX_TOP_UP = 1_000_000

Kind = CreditLedgerEntry.Kind


class CreditError(ValueError):
    """A refused credit movement, worded for the person who asked for it."""


def is_low(company: Company) -> bool:
    """Whether the Logs page warns about the balance (no query: the company is loaded)."""
    return company.sms_enabled and company.sms_credit_balance < LOW_BALANCE


def top_up(company: Company, amount: int, *, actor=None, note: str = "", request=None) -> int:
    """Add `amount` credits (a platform operator's action) and return the new balance."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise CreditError("Enter a whole number of credits.")
    if amount < 1:
        raise CreditError("A top-up adds at least 1 credit.")
    if amount > MAX_TOP_UP:
        raise CreditError(f"A single top-up adds at most {MAX_TOP_UP:,} credits.")
    with transaction.atomic(), scopes_disabled():
        locked = Company.objects.select_for_update().get(pk=company.pk)
        balance = locked.sms_credit_balance + amount
        Company.objects.filter(pk=locked.pk).update(sms_credit_balance=balance)
        CreditLedgerEntry.objects.create(
            company=locked,
            kind=Kind.TOP_UP,
            amount=amount,
            balance_after=balance,
            created_by=actor,
            note=note[:200],
        )
        audit.record(
            audit.Action.CREDITS_TOPPED_UP,
            f"Added {amount:,} SMS credits to {locked.name}",
            request=request,
            company=locked,
            actor=actor,
            details={"amount": amount, "balance_after": balance, "note": note[:200]},
        )
    company.sms_credit_balance = balance
    return balance


@dataclass(frozen=True)
class PeriodUse:
    """Credits moved in one month: what the accountant reports."""

    month: date
    charged: int  # credits spent on messages (positive)
    refunded: int  # given back for messages never sent
    topped_up: int
    messages: int  # messages charged

    @property
    def used(self) -> int:
        return self.charged - self.refunded


def use_per_month(company: Company, start: date | None = None, end: date | None = None):
    """Credits charged, refunded and topped up per calendar month (UTC), newest first.

    Read from the ledger, which outlives the retention period of the messages.
    """

    def total(kind: str, sign: int = 1):
        return Coalesce(
            Sum(
                Case(
                    When(kind=kind, then="amount"),
                    default=Value(0),
                    output_field=IntegerField(),
                )
            )
            * sign,
            0,
        )

    rows = CreditLedgerEntry._base_manager.filter(company_id=company.pk)
    if start:
        rows = rows.filter(created_at__date__gte=start)
    if end:
        rows = rows.filter(created_at__date__lte=end)
    months = (
        rows.annotate(month=TruncMonth("created_at"))
        .values("month")
        .annotate(
            charged=total(Kind.CHARGE, -1),
            refunded=total(Kind.REFUND),
            topped_up=total(Kind.TOP_UP),
            messages=Count("id", filter=Q(kind=Kind.CHARGE)),
        )
        .order_by("-month")
    )
    return [
        PeriodUse(
            month=row["month"].date() if hasattr(row["month"], "date") else row["month"],
            charged=row["charged"],
            refunded=row["refunded"],
            topped_up=row["topped_up"],
            messages=row["messages"],
        )
        for row in months
    ]
