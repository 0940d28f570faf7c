"""An admin changes the company's settings; bad values change nothing; others are refused."""

from __future__ import annotations

import pytest
from django_scopes import scope, scopes_disabled

from companies.models import AuditEntry, Company
from msglog.services import sending
from msglog.services.sending import Content, Recipient

VALID = {
    "sms_enabled": "on",
    "email_enabled": "on",
    "sms_sender": "AcmeClinic",
    "email_sender": "Acme Clinics <hello@acme.example>",
    "default_region": "GB",
    "tracking_enabled": "on",
    "retention_days": "14",
    "timezone": "Europe/London",
}


def audit_entries(company, action):
    with scopes_disabled():
        return list(AuditEntry.objects.filter(company=company, action=action))


@pytest.mark.django_db
def test_an_admin_changes_every_setting_and_the_change_is_audited(acme, admin):
    client = admin.client()
    page = client.get("/settings/")
    assert page.status_code == 200 and "Keep messages for" in page.content.decode()

    response = client.post("/settings/", VALID)
    assert response.status_code == 302
    acme.refresh_from_db()
    assert (acme.sms_sender, acme.email_sender) == ("AcmeClinic", VALID["email_sender"])
    assert (acme.default_region, acme.timezone, acme.retention_days) == (
        "GB",
        "Europe/London",
        14,
    )
    assert acme.tracking_enabled
    (entry,) = audit_entries(acme, "settings_changed")
    assert entry.actor == admin.user
    assert entry.details["changes"]["retention_days"] == [30, 14]
    assert "Settings saved." in client.get("/settings/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("retention_days", "0", "Keep messages for at least 1 day."),
        ("retention_days", "-5", "Keep messages for at least 1 day."),
        ("retention_days", "31", "at most 30 days without a contract"),
        ("retention_days", "many", "Enter a whole number"),
        ("sms_sender", "ThisIsWayTooLong", "1 to 11 letters"),
        ("sms_sender", "+1555", "not valid"),
        ("email_sender", "not an address", "Enter an email address"),
        ("default_region", "ZZ", "Select a valid choice"),
        ("timezone", "Mars/Olympus", "Select a valid choice"),
    ],
)
def test_a_bad_value_is_refused_clearly_and_nothing_is_saved(acme, admin, field, value, words):
    response = admin.client().post("/settings/", {**VALID, field: value})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was saved" in page and words in page
    acme.refresh_from_db()
    assert (acme.retention_days, acme.sms_sender, acme.default_region) == (30, "", "US")
    assert audit_entries(acme, "settings_changed") == []


@pytest.mark.django_db
def test_a_contracted_company_keeps_its_log_up_to_a_year(acme, admin):
    Company.objects.filter(pk=acme.pk).update(contracted=True)
    client = admin.client()
    assert client.post("/settings/", {**VALID, "retention_days": "365"}).status_code == 302
    response = client.post("/settings/", {**VALID, "retention_days": "366"})
    assert response.status_code == 400 and "at most 365 days" in response.content.decode()


@pytest.mark.django_db
def test_only_admins_and_operators_reach_settings(acme, support, accountant, viewer, operator):
    for persona in (support, accountant, viewer):
        client = persona.client()
        assert client.get("/settings/").status_code == 403
        assert client.post("/settings/", VALID).status_code == 403
    acme.refresh_from_db()
    assert acme.retention_days == 30
    client = operator.client()
    assert client.get("/settings/").status_code == 403  # all companies: pick one first
    client.post("/switch-company/", {"company": acme.pk})
    assert client.get("/settings/").status_code == 200


@pytest.mark.django_db
def test_settings_never_reach_another_company(acme, rival, admin):
    """Whatever the URL or form says, the page changes the admin's own company only."""
    client = admin.client()
    client.post(f"/settings/?company={rival.pk}", {**VALID, "company": rival.pk, "id": rival.pk})
    rival.refresh_from_db()
    assert rival.retention_days == 30 and rival.sms_sender == ""
    assert client.post("/switch-company/", {"company": rival.pk}).status_code == 400


@pytest.mark.django_db
def test_saving_settings_never_overwrites_a_concurrent_top_up(acme, admin):
    client = admin.client()
    client.get("/settings/")
    Company.objects.filter(pk=acme.pk).update(sms_credit_balance=500)  # a top-up meanwhile
    client.post("/settings/", VALID)
    acme.refresh_from_db()
    assert acme.sms_credit_balance == 500


@pytest.mark.django_db
def test_turning_sms_off_makes_later_sends_end_as_channel_disabled(acme, admin):
    admin.client().post("/settings/", {**VALID, "sms_enabled": ""})
    acme.refresh_from_db()
    with scope(company=acme.pk):
        message = sending.send(
            acme,
            channel="sms",
            recipient=Recipient(address="+447700900123", name="Pat"),
            category="transactional",
            message_type="reminder",
            content=Content(text="See you tomorrow"),
        )
    assert message.status == "channel_disabled"
    page = admin.client().get(message.get_absolute_url()).content.decode()
    assert "disabled" in page.lower()
