"""Company administration in a real (headless) browser: each page, as the role that uses it."""

from __future__ import annotations

import pytest
from django_scopes import scopes_disabled

from companies.models import AuditEntry, Company, Membership
from msglog.models import Message
from tests import checks
from tests.browser import sign_in
from tests.factories import PASSWORD, MessageFactory

pytestmark = pytest.mark.browser


def test_an_admin_fixes_a_bad_retention_and_saves_the_settings(live_server, chromium, acme, admin):
    page = sign_in(chromium, live_server.url, admin.user.username, PASSWORD)
    page.click("nav.mainnav >> text=Settings")
    page.wait_for_url("**/settings/")
    page.fill("#id_retention_days", "0")
    page.uncheck("#id_sms_enabled")
    page.click("text=Save settings")
    assert page.locator("#error-retention_days").inner_text() == "Keep messages for at least 1 day."
    assert page.locator("[role=alert] >> text=Nothing was saved").is_visible()
    acme.refresh_from_db()
    assert acme.sms_enabled and acme.retention_days == 30  # nothing half-applied

    page.fill("#id_retention_days", "14")
    page.select_option("#id_timezone", "Europe/Paris")
    page.click("text=Save settings")
    page.wait_for_selector("text=Settings saved.")
    acme.refresh_from_db()
    assert (acme.sms_enabled, acme.retention_days, acme.timezone) == (False, 14, "Europe/Paris")
    page.click("nav.mainnav >> text=Audit log")
    assert page.locator("table.audit-table >> text=Changed").count() >= 1
    page.context.close()


def test_an_admin_changes_a_role_and_cannot_demote_the_last_admin(
    live_server, chromium, acme, admin, support
):
    page = sign_in(chromium, live_server.url, admin.user.username, PASSWORD)
    page.goto(f"{live_server.url}/settings/members/")
    row = page.locator("tr[data-member='sam.support']")
    row.locator("select").select_option("accountant")
    row.locator("text=Change role").click()
    page.wait_for_selector("text=sam.support is now Accountant.")
    mine = page.locator("tr[data-member='ada.admin']")
    mine.locator("select").select_option("viewer")
    mine.locator("text=Change role").click()
    page.wait_for_selector("text=A company needs at least one admin")
    with scopes_disabled():
        roles = dict(Membership.objects.filter(company=acme).values_list("user__username", "role"))
    assert roles == {"ada.admin": "admin", "sam.support": "accountant"}
    page.context.close()


def test_an_admin_previews_then_erases_a_recipient(live_server, chromium, acme, admin):
    MessageFactory(company=acme, to_address="gone@example.org")
    MessageFactory(company=acme, to_address="gone@example.org")
    MessageFactory(company=acme, to_address="stays@example.org")
    page = sign_in(chromium, live_server.url, admin.user.username, PASSWORD)
    page.goto(f"{live_server.url}/settings/erasure/")
    page.fill("#id_address", "gone@example.org")
    page.click("text=Show what would be erased")
    assert "2 messages with their events" in page.locator(".preview").inner_text()
    page.click("text=Erase for good")
    page.wait_for_selector("text=Erased: 2 messages")
    with scopes_disabled():
        assert list(Message.objects.values_list("to_address", flat=True)) == ["stays@example.org"]
        assert AuditEntry.objects.filter(company=acme, action="erasure").count() == 1
    page.context.close()


def test_an_operator_tops_up_and_the_low_balance_warning_goes(
    live_server, chromium, acme, support, operator, accountant
):
    Company.objects.filter(pk=acme.pk).update(sms_credit_balance=0)
    page = sign_in(chromium, live_server.url, support.user.username, PASSWORD)
    assert "SMS credits are low" in page.locator(".low-credits").inner_text()
    page.context.close()

    page = sign_in(chromium, live_server.url, operator.user.username, PASSWORD)
    with page.expect_navigation():
        page.select_option("#company-switch", str(acme.pk))
    page.goto(f"{live_server.url}/settings/credits/")
    page.fill("#id_amount", "-10")
    page.click("text=Add credits")
    assert "at least 1 credit" in page.locator("#error-amount").inner_text()
    page.fill("#id_amount", "500")
    page.fill("#id_note", "Invoice 42")
    page.click("text=Add credits")
    page.wait_for_selector("text=the balance is 500")
    assert page.locator("#balance").inner_text() == "500"
    page.context.close()
    assert checks.ledger_matches_balance(acme)

    page = sign_in(chromium, live_server.url, accountant.user.username, PASSWORD)
    assert page.locator(".low-credits").count() == 0
    page.click("nav.mainnav >> text=Credits")
    assert "Add credits" not in page.content()
    assert "500" in page.locator("table.per-month").inner_text()
    page.context.close()
