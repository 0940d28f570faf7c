"""Fixtures the services' stories share."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from companies.models import Company, CreditLedgerEntry


@pytest.fixture
def funded(acme):
    """Acme with 20 SMS credits, topped up through the ledger."""
    with scopes_disabled():
        Company.objects.filter(pk=acme.pk).update(sms_credit_balance=20)
        CreditLedgerEntry.objects.create(company=acme, kind="top_up", amount=20, balance_after=20)
    acme.refresh_from_db()
    return acme
