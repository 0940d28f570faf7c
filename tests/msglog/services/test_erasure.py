"""Erasure: an admin (or an operator's command) erases one recipient; nothing that names
them is left in any table, other recipients and companies keep their data, and the audit
log says an erasure happened without saying whom."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO, StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django_scopes import scope, scopes_disabled

from companies import credits
from companies.models import AuditEntry, Contact
from msglog.models import DailyRollup, Message, StatusEvent, Suppression
from msglog.services import delivery, erasure, purging, rollups, sending
from msglog.services.sending import Content, Recipient
from tests import checks
from tests.factories import ContactFactory, MessageFactory, StatusEventFactory, SuppressionFactory
from tests.lifecycle import tables_mentioning

ADDRESS = "Jane.Erased@Example.org"
PHONE = "+14155550199"


def full_history(company, contact=None) -> None:
    """Everything the log can hold about Jane: emails and SMS with events and raw
    payloads, a charge in the ledger, a suppression, the simulator's copy."""
    credits.top_up(company, 10)
    with scope(company=company.pk):
        for channel, address in (("email", ADDRESS), ("sms", PHONE)):
            message = sending.send(
                company,
                channel=channel,
                recipient=Recipient(address=address, name="Jane Erased", contact=contact),
                category="transactional",
                message_type="reminder",
                content=Content(subject="Hi Jane", text="Hello Jane Erased"),
            )
            assert delivery.deliver(message.pk) == "sent", message.status
            StatusEventFactory(
                message=message,
                status="delivered",
                raw_payload={"To": address, "MessageStatus": "delivered"},
            )
    SuppressionFactory(company=company, address=ADDRESS.lower(), note=f"{ADDRESS} bounced")
    rollups.count_created([MessageFactory.build(company=company, created_at=message.created_at)])


@pytest.mark.django_db
def test_an_admin_erases_an_address_and_nothing_that_names_it_is_left(acme, rival, admin):
    full_history(acme)
    full_history(rival)  # the same person is also Rival's customer: Rival keeps its data
    keep = MessageFactory(company=acme, to_address="someone.else@example.org")
    StatusEventFactory(message=keep)
    with scopes_disabled():
        rival_before = Message.objects.filter(company=rival).count()
        rollup_before = list(DailyRollup.objects.filter(company=acme).values_list("messages"))
    assert tables_mentioning("jane.erased")

    client = admin.client()
    preview = client.post("/settings/erasure/", {"address": ADDRESS})
    assert preview.status_code == 200
    assert "1 message with their events" in preview.content.decode()
    client.post("/settings/erasure/", {"address": ADDRESS, "confirm": "True"})

    with scopes_disabled():
        assert not Message.objects.filter(
            company=acme, channel="email", to_address__iexact=ADDRESS
        ).exists()
        assert Message.objects.filter(pk=keep.pk).exists()
        assert StatusEvent.objects.filter(message=keep).exists()
        assert Message.objects.filter(company=rival).count() == rival_before
        assert (
            list(DailyRollup.objects.filter(company=acme).values_list("messages")) == rollup_before
        )
        (entry,) = AuditEntry.objects.filter(company=acme, action="erasure")
    # Only Rival's copy of her data remains.
    with scopes_disabled():
        assert not Message.objects.filter(company=acme, to_name="Jane Erased", channel="email")
        assert Message.objects.filter(company=acme, to_name="Jane Erased", channel="sms")
        assert Message.objects.filter(company=rival, to_name="Jane Erased").count() == 2
    assert "jane" not in json.dumps(entry.details).lower() and "jane" not in entry.summary.lower()
    assert entry.details["deleted"]["msglog.Message"] == 1
    assert checks.ledger_matches_balance(acme)


@pytest.mark.django_db
def test_erasing_everywhere_leaves_no_trace_in_any_table(acme, rival, operator):
    full_history(acme)
    full_history(rival)
    out = StringIO()
    call_command("erase_recipient", ADDRESS, stdout=out)
    call_command("erase_recipient", PHONE, stdout=out)
    assert tables_mentioning("jane.erased") == {}
    assert tables_mentioning("4155550199") == {}
    assert tables_mentioning("Jane Erased") == {}
    with scopes_disabled():
        erasures = AuditEntry.objects.filter(action="erasure")
        assert {e.company_id for e in erasures} == {acme.pk, rival.pk}
        assert all(e.actor is None and "operator" in e.summary for e in erasures)
    assert checks.ledger_matches_balance(acme) and checks.ledger_matches_balance(rival)


@pytest.mark.django_db
def test_the_command_counts_first_and_refuses_a_bad_address(acme):
    full_history(acme)
    out = StringIO()
    call_command("erase_recipient", ADDRESS, "--dry-run", "--company", "acme", stdout=out)
    assert json.loads(out.getvalue())["acme"]["messages"] == 1
    with scopes_disabled():
        assert Message.objects.filter(company=acme).count() == 2
    with pytest.raises(Exception, match="not a valid"):
        call_command("erase_recipient", "not-a-number", stdout=out)
    with pytest.raises(Exception, match="No company"):
        call_command("erase_recipient", ADDRESS, "--company", "nope", stdout=out)


@pytest.mark.django_db
def test_erasing_a_contact_takes_its_messages_and_the_contact(acme, admin):
    contact = ContactFactory(company=acme, name="Jane Erased", email=ADDRESS, phone=PHONE)
    full_history(acme, contact=contact)
    other = ContactFactory(company=acme, name="Someone Else")
    client = admin.client()
    confirm = client.get(f"/contacts/{contact.pk}/erase/").content.decode()
    assert "2 messages with their events" in confirm
    client.post(f"/contacts/{contact.pk}/erase/")
    assert tables_mentioning("jane.erased") == {} and tables_mentioning("4155550199") == {}
    with scopes_disabled():
        assert not Contact.objects.filter(pk=contact.pk).exists()
        assert Contact.objects.filter(pk=other.pk).exists()


@pytest.mark.django_db
def test_keeping_the_address_on_the_do_not_send_list(acme, admin):
    full_history(acme)
    admin.client().post(
        "/settings/erasure/", {"address": ADDRESS, "keep_suppression": "on", "confirm": "True"}
    )
    with scopes_disabled():
        (kept,) = Suppression.objects.filter(company=acme)
    assert kept.address == ADDRESS.lower() and kept.note == ""
    assert set(tables_mentioning("jane.erased")) == {"msglog_suppression"}


@pytest.mark.django_db
def test_bad_input_and_other_roles_are_refused(acme, rival, admin, support, accountant):
    client = admin.client()
    response = client.post("/settings/erasure/", {"address": "12"})
    assert response.status_code == 400 and "not a valid phone number" in response.content.decode()
    response = client.post("/settings/erasure/", {"address": "jane@"})
    assert response.status_code == 400 and "not a valid email" in response.content.decode()
    full_history(acme)
    for persona in (support, accountant):
        c = persona.client()
        assert (
            c.post("/settings/erasure/", {"address": ADDRESS, "confirm": "True"}).status_code == 403
        )
    with scopes_disabled():
        assert Message.objects.filter(company=acme).count() == 2
        assert not AuditEntry.objects.filter(action="erasure").exists()


@pytest.mark.django_db
def test_export_files_that_mention_the_address_are_found_in_csv_and_excel(acme):
    csv_name = default_storage.save(
        "tests/export.csv", ContentFile(b"to\r\njane.erased@example.org\r\n")
    )
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/sharedStrings.xml", "<si><t>Jane.Erased@Example.org</t></si>")
    xlsx_name = default_storage.save("tests/export.xlsx", ContentFile(buffer.getvalue()))
    clean_name = default_storage.save("tests/other.csv", ContentFile(b"to\r\nbob@example.org\r\n"))
    try:
        needles = frozenset({ADDRESS})
        assert purging.file_mentions(default_storage.open(csv_name), needles)
        assert purging.file_mentions(default_storage.open(xlsx_name), needles)
        assert not purging.file_mentions(default_storage.open(clean_name), needles)
    finally:
        for name in (csv_name, xlsx_name, clean_name):
            default_storage.delete(name)


@pytest.mark.django_db
def test_erasure_hooks_get_the_company_and_its_addresses(acme, monkeypatch):
    calls = []
    monkeypatch.setitem(
        purging.ERASURE_HOOKS,
        "tests.Export",
        lambda cid, addresses: calls.append((cid, addresses)) or 1,
    )
    with scopes_disabled():
        counts = erasure.erase(erasure.target_for_address(acme, ADDRESS))
    assert counts["tests.Export"] == 1
    assert calls == [(acme.pk, frozenset({ADDRESS, ADDRESS.lower(), "Jane.Erased@example.org"}))]
