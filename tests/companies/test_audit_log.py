"""The audit log page: what people did, filterable, exportable, never changed."""

from __future__ import annotations

import csv
import io

import pytest
from django_scopes import scopes_disabled

from companies import audit
from companies.models import AuditEntry
from tests.factories import MessageFactory


def entries(company, action=None):
    with scopes_disabled():
        rows = AuditEntry.objects.filter(company=company)
        return list(rows.filter(action=action) if action else rows)


@pytest.mark.django_db
def test_sign_ins_content_views_and_changes_reach_the_admins_audit_log(acme, admin, support):
    support.client()  # signs in
    message = MessageFactory(company=acme)
    support_client = support.client()
    support_client.get(f"/messages/{message.public_id}/content/")
    audit.record(audit.Action.BATCH_STOPPED, "Stopped batch Autumn promo", company=acme)
    audit.record(audit.Action.EXPORT, "Exported 20 rows as CSV", company=acme)

    client = admin.client()
    client.post("/settings/", {"retention_days": "7", "default_region": "US", "timezone": "UTC"})
    page = client.get("/settings/audit/").content.decode()
    for words in (
        "sam.support",
        "Signed in",
        message.public_id,
        "Stopped batch Autumn promo",
        "Exported 20 rows as CSV",
        "Changed",
    ):
        assert words in page, words


@pytest.mark.django_db
def test_the_audit_log_filters_and_exports_exactly_those_rows_as_safe_csv(acme, rival, admin):
    audit.record(audit.Action.EXPORT, "=HYPERLINK('http://evil')", company=acme)
    audit.record(audit.Action.LOGIN, "Signed in", company=acme)
    audit.record(audit.Action.EXPORT, "Rival's export", company=rival)
    client = admin.client()
    page = client.get("/settings/audit/", {"action": "export"}).content.decode()
    assert "HYPERLINK" in page and "Rival" not in page

    response = client.get("/settings/audit/", {"action": "export", "format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["when (UTC)", "who", "action", "what"]
    assert [r[3] for r in rows[1:]] == ["'=HYPERLINK('http://evil')"]
    # The export itself is on the record.
    assert any("audit log" in e.summary for e in entries(acme, "export"))


@pytest.mark.django_db
def test_bad_filters_are_form_errors_not_crashes(acme, admin):
    response = admin.client().get("/settings/audit/", {"action": "nuke", "date_from": "yesterday"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.django_db
def test_only_admins_read_the_audit_log(acme, support, accountant, viewer):
    for persona in (support, accountant, viewer):
        assert persona.client().get("/settings/audit/").status_code == 403


@pytest.mark.django_db
def test_audit_entries_can_be_neither_changed_nor_deleted(acme):
    entry = audit.record(audit.Action.LOGIN, "Signed in", company=acme)
    entry.summary = "Nothing happened"
    with pytest.raises(ValueError, match="append-only"):
        entry.save()
    with pytest.raises(ValueError, match="append-only"):
        entry.delete()
