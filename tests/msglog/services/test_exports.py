"""An accountant exports exactly the filtered rows, safely, and every export is audited."""

from __future__ import annotations

import csv
import io
import os
from datetime import timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scopes_disabled
from hypothesis import given
from hypothesis import strategies as st
from openpyxl.worksheet._writer import ALL_TEMP_FILES

from companies.models import AuditEntry
from companies.tenancy import company_scope
from msglog.models import Export, Message
from msglog.rules import cells
from msglog.services import erasure, retention
from msglog.services.exports import columns, excel_file, jobs, selection
from tests.factories import (
    BatchFactory,
    ContactFactory,
    MessageFactory,
    TemplateFactory,
)

pytestmark = pytest.mark.django_db


# --- Reading an export back, as a spreadsheet would --------------------------------------


def body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(body(response).decode("utf-8-sig"))))


def xlsx_book(response):
    assert response.status_code == 200, response.content[:500]
    return openpyxl.load_workbook(io.BytesIO(body(response)))


def xlsx_rows(response) -> list[dict]:
    sheet = xlsx_book(response)["Messages"]
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def export(client, file_format: str, query: str = "", source: str = "logs", source_id=None):
    data = {"format": file_format, "source": source, "query": query}
    if source_id is not None:
        data["source_id"] = source_id
    return client.post("/exports/new/", data)


def view_ids(client, path: str, query: str) -> set[str]:
    """Every message the view's filters select, across all its pages."""
    response = client.get(f"{path}?{query}")
    assert response.status_code == 200
    with scopes_disabled():
        return set(response.context["filter"].qs.values_list("public_id", flat=True))


def whole_log(company, *, include_content: bool) -> selection.Selection:
    """What an export of the company's whole Logs view selects."""
    return selection.select(
        company=company,
        all_companies=False,
        source="logs",
        source_id=None,
        query="period=all",
        include_content=include_content,
    )


# --- The story's data --------------------------------------------------------------------


@pytest.fixture
def month(acme, rival):
    """A month of Acme's traffic: more rows than a page, two channels, every outcome."""
    now = timezone.now()
    reminder = TemplateFactory(company=acme, name="Reminder", channel="sms")
    with scopes_disabled():
        version = reminder.publish()
    batch = BatchFactory(company=acme, name="November reminders", channel="sms")
    jane = ContactFactory(company=acme, name="Jane Doe", email="jane.doe@example.org")
    statuses = ["delivered", "delivered", "sent", "bounced", "undelivered", "opened"]
    for i in range(130):
        sms = i % 3 == 0
        MessageFactory(
            company=acme,
            channel="sms" if sms else "email",
            to_address=f"+1415555{i:04d}" if sms else f"client{i}@example.org",
            status=statuses[i % len(statuses)],
            error_code="30003" if statuses[i % len(statuses)] == "undelivered" else "",
            message_type="reminder" if i % 2 else "confirmation",
            template=reminder if sms else None,
            template_version=version if sms else None,
            batch=batch if i % 5 == 0 else None,
            segments=2 if sms else 0,
            credits=2 if sms else 0,
            created_at=now - timedelta(days=i % 40, minutes=i),
            sent_at=now - timedelta(days=i % 40, minutes=i - 1),
        )
    for i in range(4):
        MessageFactory(
            company=acme,
            contact=jane,
            to_name="Jane Doe",
            to_address="jane.doe@example.org",
            status="delivered",
            created_at=now - timedelta(days=50 + i),
        )
    MessageFactory(company=rival, to_address="secret@rival.example", created_at=now)
    return {"template": reminder, "batch": batch, "contact": jane}


FILTERS = [
    "",
    "period=all",
    "tab=sms&period=all",
    "tab=failed&period=7d",
    "status=delivered&status=opened&channel=email&period=30d",
    "q=jane.doe&period=all",
    "has_errors=true&period=all",
    "message_type=reminder&period=custom&date_from={week_ago}&date_to={today}",
    "sort=-credits&cursor=abc&page=3&period=all",  # paging and sorting never narrow an export
]


@pytest.mark.parametrize("query", FILTERS)
def test_the_csv_holds_exactly_the_rows_the_logs_view_selects(accountant, month, query):
    today = timezone.now().date()
    query = query.format(today=today, week_ago=today - timedelta(days=6))
    client = accountant.client()
    rows = csv_rows(export(client, "csv", query))
    assert {row["Message ID"] for row in rows} == view_ids(client, "/logs/", query)
    assert len(rows) == len({row["Message ID"] for row in rows})


@pytest.mark.parametrize("query", ["period=all", "tab=sms&period=all", "status=bounced"])
def test_the_excel_file_holds_exactly_the_rows_the_logs_view_selects(accountant, month, query):
    client = accountant.client()
    rows = xlsx_rows(export(client, "xlsx", query))
    assert {row["Message ID"] for row in rows} == view_ids(client, "/logs/", query)


def test_template_and_batch_filters_export_their_messages(accountant, month):
    client = accountant.client()
    for query in (f"template={month['template'].pk}&period=all", f"batch={month['batch'].pk}"):
        rows = csv_rows(export(client, "csv", query))
        assert rows and {r["Message ID"] for r in rows} == view_ids(client, "/logs/", query)
    batch_rows = csv_rows(export(client, "csv", "", source="batch", source_id=month["batch"].pk))
    assert {r["Batch"] for r in batch_rows} == {"November reminders"}
    assert len(batch_rows) == 26  # every fifth of 130, over all time


def test_a_contacts_page_exports_their_whole_history(accountant, month):
    client = accountant.client()
    contact = month["contact"]
    rows = csv_rows(export(client, "csv", "", source="contact", source_id=contact.pk))
    assert len(rows) == 4
    assert {r["Message ID"] for r in rows} == view_ids(client, f"/contacts/{contact.pk}/", "")


def test_the_failed_page_exports_the_failures_of_its_window(accountant, month):
    client = accountant.client()
    page = client.get("/failed/?period=30d&channel=sms")
    rows = csv_rows(export(client, "csv", "period=30d&channel=sms", source="failed"))
    assert len(rows) == page.context["report"].total_failed > 0
    assert {r["Status"] for r in rows} <= {"Bounced", "Undelivered"}
    assert {r["Channel"] for r in rows} == {"SMS"}


def test_every_column_an_accountant_reconciles_with(acme, accountant):
    acme.timezone = "America/New_York"
    acme.save()
    template = TemplateFactory(company=acme, name="Invoice", channel="sms")
    with scopes_disabled():
        version = template.publish()
    sent = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    message = MessageFactory(
        company=acme,
        channel="sms",
        to_name="Ann",
        to_address="+14155550100",
        status="undelivered",
        status_reason="Carrier said no",
        error_code="30003",
        provider="twilio",
        message_type="invoice",
        category="transactional",
        template=template,
        template_version=version,
        segments=3,
        credits=3,
        created_at=sent - timedelta(seconds=5),
        sent_at=sent,
        failed_at=sent + timedelta(minutes=1),
    )
    row = csv_rows(export(accountant.client(), "csv"))[0]
    local = sent.astimezone(ZoneInfo("America/New_York"))
    assert row["Message ID"] == message.public_id
    assert row["Company"] == "Acme Clinics"
    assert (row["Channel"], row["Category"], row["Type"]) == ("SMS", "Transactional", "Invoice")
    assert (row["Recipient name"], row["Recipient"]) == ("Ann", "+14155550100")
    assert (row["Status"], row["Status reason"], row["Error code"]) == (
        "Undelivered",
        "Carrier said no",
        "30003",
    )
    assert (row["Provider"], row["Template"], row["Template version"]) == ("Twilio", "Invoice", "1")
    assert row["Time zone"] == "America/New_York"
    assert row["Sent (UTC)"] == sent.strftime("%Y-%m-%d %H:%M:%S")
    assert row["Sent (company time)"] == local.strftime("%Y-%m-%d %H:%M:%S")
    assert row["Delivered (UTC)"] == ""
    assert (row["SMS segments"], row["Credits"]) == ("3", "3")

    book = xlsx_book(export(accountant.client(), "xlsx"))
    sheet = book["Messages"]
    header = [c.value for c in sheet[1]]
    cells = dict(zip(header, sheet[2], strict=True))
    assert cells["Credits"].value == 3 and cells["Credits"].data_type == "n"
    assert cells["Sent (UTC)"].value == sent.replace(tzinfo=None)
    assert cells["Sent (company time)"].value == local.replace(tzinfo=None)


def test_the_excel_file_has_totals_by_channel_status_and_type(accountant, month):
    book = xlsx_book(export(accountant.client(), "xlsx", "period=all"))
    rows = [row for row in book["Totals"].iter_rows(values_only=True) if row]
    by_label = {row[0]: row for row in rows}
    all_row = by_label["All"]
    assert all_row[1] == 134  # every Acme message, none of Rival's
    assert by_label["SMS"][1] == 44 and by_label["SMS"][3] == 88  # credits
    assert by_label["Email"][1] == 90
    assert by_label["Reminder"][1] == 65
    assert by_label["Bounced"][1] == 22
    # Delivery rate: delivered (or opened) of those handed to a provider; a number.
    assert isinstance(all_row[4], float) and 0 < all_row[4] < 1


# --- Spreadsheet formulas ------------------------------------------------------------------

DANGEROUS = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "\uff1d1+1",  # full-width equals sign
    "  =1+1",
]


@pytest.mark.parametrize("value", DANGEROUS)
def test_a_formula_trigger_is_neutralized(value):
    assert cells.neutralize(value) == "'" + value


@pytest.mark.parametrize(
    "value", ["", "Jane Doe", "-12", "+14155550123", "3.5", "a=b", "jane@example.org"]
)
def test_plain_values_and_numbers_stay_as_they_are(value):
    assert cells.neutralize(value) == value


def test_formulas_typed_into_names_never_reach_a_spreadsheet_as_formulas(acme, accountant):
    for value in DANGEROUS:
        MessageFactory(company=acme, to_name=value, status_reason=value, credits=1)
    MessageFactory(company=acme, channel="sms", to_name="-12", to_address="+14155550123")
    client = accountant.client()

    rows = csv_rows(export(client, "csv"))
    names = {row["Recipient name"] for row in rows}
    assert names == {"'" + v for v in DANGEROUS} | {"-12"}
    assert {row["Recipient"] for row in rows if row["Recipient name"] == "-12"} == {"+14155550123"}
    assert all(
        row["Status reason"].startswith("'") for row in rows if row["Recipient name"] != "-12"
    )

    sheet = xlsx_book(export(client, "xlsx"))["Messages"]
    header = [c.value for c in sheet[1]]
    name_at, credits_at = header.index("Recipient name"), header.index("Credits")
    for row in sheet.iter_rows(min_row=2):
        assert row[name_at].data_type == "s"  # never "f", a formula
        assert row[credits_at].data_type == "n"
    names = {row[name_at].value for row in sheet.iter_rows(min_row=2)}
    assert names == {"'" + v for v in DANGEROUS} | {"-12"}  # spaces, tabs, CR and LF kept


def test_control_characters_do_not_break_the_excel_file(acme, accountant):
    MessageFactory(company=acme, to_name="Bad\x01name\x0b here\ufffe")
    rows = xlsx_rows(export(accountant.client(), "xlsx"))
    assert rows[0]["Recipient name"] == "Badname here"


def test_markup_and_spaces_reach_the_excel_file_as_typed(acme, accountant):
    """The sheet's XML is written as text: markup is escaped, spaces and CR kept, and a
    text repeated on many rows (remembered once) reads the same on every one."""
    names = ["Tom & Jerry <b>", "a > b", " leading", "trailing ", "line\r\nbreak", "A&amp;B"]
    for name in names * 3:
        MessageFactory(company=acme, to_name=name, status_reason=name)
    rows = xlsx_rows(export(accountant.client(), "xlsx"))
    assert sorted(row["Recipient name"] for row in rows) == sorted(names * 3)
    assert all(row["Status reason"] == row["Recipient name"] for row in rows)


def test_an_excel_file_that_fails_leaves_no_temporary_files(acme, month, tmp_path):
    """A worker lives long: a failed export must not keep its sheet's XML (a gigabyte for a
    million rows) on disk until the worker exits."""
    with scopes_disabled():
        selection = whole_log(acme, include_content=False)
        before = set(ALL_TEMP_FILES)
        with pytest.raises(IsADirectoryError):  # the rows are written, the archive cannot be
            excel_file.write_xlsx(selection, tmp_path)
    assert [path for path in ALL_TEMP_FILES if path not in before and os.path.exists(path)] == []


def test_an_excel_file_that_fails_while_its_rows_are_written_leaves_no_temporary_files(
    acme, tmp_path
):
    """The export can fail between two chunks of rows (the job's progress callback, the
    database), with the sheet's file open inside <sheetData>: the error reaches the caller
    and the file is removed all the same."""
    total = 2 * excel_file.XLSX_CHUNK_ROWS  # progress is first reported after the first chunk
    with scopes_disabled():
        Message.objects.bulk_create(
            MessageFactory.build_batch(total, company=acme, to_name="Jane Doe")
        )
        selection = whole_log(acme, include_content=True)
        reported = []

        def on_progress(written: int) -> None:
            reported.append(written)
            raise ConnectionError("the job's progress could not be saved")

        before = set(ALL_TEMP_FILES)
        with pytest.raises(ConnectionError):
            excel_file.write_xlsx(selection, tmp_path / "export.xlsx", on_progress)
    [written] = reported
    assert written < total  # the export failed with rows still to write
    assert [path for path in ALL_TEMP_FILES if path not in before and os.path.exists(path)] == []
    assert not (tmp_path / "export.xlsx").exists()


# --- Roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["support", "viewer"])
def test_support_and_viewers_may_not_export(request, acme, persona):
    MessageFactory(company=acme)
    client = request.getfixturevalue(persona).client()
    response = export(client, "csv")
    assert response.status_code == 403
    assert b"Message ID" not in response.content
    assert client.get("/exports/").status_code == 403
    page = client.get("/logs/").content.decode()
    assert "export-menu" not in page and 'href="/exports/"' not in page


def test_accountants_export_without_message_content(acme, accountant):
    MessageFactory(company=acme, subject="Your biopsy results", body_text="secret")
    client = accountant.client()
    page = client.get("/logs/").content.decode()
    assert "export-menu" in page and 'href="/exports/"' in page
    response = export(client, "csv")
    content = body(response).decode("utf-8-sig")
    assert "biopsy" not in content and "secret" not in content
    assert "Subject" not in content.splitlines()[0]


def test_admins_export_with_content(acme, admin):
    MessageFactory(company=acme, subject="Your biopsy results", body_text="see you")
    rows = csv_rows(export(admin.client(), "csv"))
    assert (rows[0]["Subject"], rows[0]["Text"]) == ("Your biopsy results", "see you")


def test_operators_export_every_company_or_one(acme, rival, operator):
    MessageFactory(company=acme, to_address="a@acme.example")
    MessageFactory(company=rival, to_address="r@rival.example")
    client = operator.client()
    rows = csv_rows(export(client, "csv", "period=all"))
    assert {r["Company"] for r in rows} == {"Acme Clinics", "Rival Corp"}
    rows = csv_rows(export(client, "csv", f"period=all&company={rival.pk}"))
    assert {r["Recipient"] for r in rows} == {"r@rival.example"}


# --- Audit ---------------------------------------------------------------------------------


def test_every_export_is_audited_with_its_filters_and_row_count(acme, accountant, month):
    client = accountant.client()
    csv_rows(export(client, "csv", "tab=sms&period=all"))
    xlsx_rows(export(client, "xlsx", "status=bounced&period=all"))
    with scopes_disabled():
        entries = list(AuditEntry.objects.filter(action="export").order_by("id"))
    assert [e.actor for e in entries] == [accountant.user, accountant.user]
    assert all(e.company == acme for e in entries)
    first, second = (e.details for e in entries)
    assert first["format"] == "csv" and first["rows"] == 44
    assert first["filters"]["tab"] == "sms" and first["filters"]["period"] == "all"
    assert second["format"] == "xlsx" and second["rows"] == 22
    assert second["filters"]["status"] == ["bounced"]
    assert first["content_included"] is False


# --- Bad input -----------------------------------------------------------------------------


def no_export_made(response, wording: str) -> None:
    assert response.status_code == 400
    assert "attachment" not in response.get("Content-Disposition", "")
    assert wording in response.content.decode()
    with scopes_disabled():
        assert not AuditEntry.objects.filter(action="export").exists()
        assert not Export.objects.exists()


def test_an_unknown_format_is_refused(acme, accountant):
    no_export_made(export(accountant.client(), "pdf"), "Choose CSV or Excel")


@pytest.mark.parametrize(
    "query",
    ["date_from=yesterday", "status=exploded", "period=forever", "template=abc"],
)
def test_malformed_filters_are_refused_with_the_reason(acme, accountant, query):
    MessageFactory(company=acme)
    no_export_made(export(accountant.client(), "csv", query), "could not be used")


def test_another_companys_rows_cannot_be_exported_by_tampering(acme, rival, accountant):
    MessageFactory(company=acme)
    theirs = MessageFactory(
        company=rival,
        template=TemplateFactory(company=rival),
        batch=BatchFactory(company=rival),
        contact=ContactFactory(company=rival),
    )
    client = accountant.client()
    for query, source, source_id in [
        (f"company={rival.pk}", "logs", None),
        (f"template={theirs.template_id}", "logs", None),
        (f"batch={theirs.batch_id}", "logs", None),
        ("", "contact", theirs.contact_id),
        ("", "batch", theirs.batch_id),
        ("", "contact", "../1"),
        ("", "nowhere", None),
    ]:
        response = export(client, "csv", query, source=source, source_id=source_id)
        assert response.status_code == 400, (query, source)
        assert theirs.public_id.encode() not in response.content
    with scopes_disabled():
        assert not AuditEntry.objects.filter(action="export").exists()


def test_a_get_never_exports(acme, accountant):
    assert accountant.client().get("/exports/new/?format=csv").status_code == 405


# --- The Logs page stays as fast as it was --------------------------------------------------


def test_the_export_menu_adds_no_queries_to_the_logs_page(acme, accountant, viewer, month):
    counts = {}
    for persona in (accountant, viewer):  # same page; only the accountant gets the menu
        client = persona.client()
        client.get("/logs/")
        with CaptureQueriesContext(connection) as queries:
            page = client.get("/logs/?period=all").content.decode()
        counts[persona.role] = len(queries)
        assert ("export-menu" in page) == (persona is accountant)
    assert counts["accountant"] == counts["viewer"]


# --- Expiry ----------------------------------------------------------------------------------


def test_expired_exports_are_deleted_with_their_files(acme, admin, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    now = timezone.now()
    with scopes_disabled():
        old = Export.objects.create(
            company=acme,
            file_format="csv",
            source="logs",
            state="ready",
            file_path="exports/old.csv",
            file_name="old.csv",
            expires_at=now - timedelta(minutes=1),
        )
        fresh = Export.objects.create(
            company=acme,
            file_format="csv",
            source="logs",
            state="ready",
            file_path="exports/fresh.csv",
            file_name="fresh.csv",
            expires_at=now + timedelta(hours=1),
        )
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports/old.csv").write_text("x")
    (tmp_path / "exports/fresh.csv").write_text("Message ID\n")
    client = admin.client()
    assert client.get(f"/exports/{old.public_id}/download/").status_code == 410
    assert body(client.get(f"/exports/{fresh.public_id}/download/")) == b"Message ID\n"

    with scopes_disabled():
        assert jobs.delete_expired() == 1
        assert list(Export.objects.all()) == [fresh]
    assert not (tmp_path / "exports/old.csv").exists()
    assert (tmp_path / "exports/fresh.csv").exists()


def ready_export(company, tmp_path, name: str, content: str, created_days_ago: int = 0):
    with scopes_disabled():
        made = Export.objects.create(
            company=company,
            file_format="csv",
            source="logs",
            state="ready",
            file_path=f"exports/{name}",
            file_name=name,
            created_at=timezone.now() - timedelta(days=created_days_ago),
            expires_at=timezone.now() + timedelta(hours=1),
        )
    (tmp_path / "exports").mkdir(exist_ok=True)
    (tmp_path / "exports" / name).write_text(content)
    return made


def test_retention_deletes_exports_older_than_the_period(acme, rival, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    old = ready_export(acme, tmp_path, "old.csv", "Message ID\n", created_days_ago=40)
    recent = ready_export(acme, tmp_path, "recent.csv", "Message ID\n", created_days_ago=1)
    theirs = ready_export(rival, tmp_path, "theirs.csv", "Message ID\n", created_days_ago=40)

    with company_scope(acme.pk):
        counts = retention.purge_company(acme)

    assert counts["msglog.Export"] == 1
    with scopes_disabled():
        assert set(Export.objects.all()) == {recent, theirs}
    assert not (tmp_path / "exports/old.csv").exists()
    assert old.pk is not None and (tmp_path / "exports/theirs.csv").exists()


def test_erasure_deletes_the_export_files_that_mention_the_address(acme, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    naming = ready_export(acme, tmp_path, "naming.csv", "Recipient\njane@example.com\n")
    other = ready_export(acme, tmp_path, "other.csv", "Recipient\nbob@example.com\n")

    with company_scope(acme.pk):
        counts = erasure.erase(erasure.target_for_address(acme, "jane@example.com"))

    assert counts["msglog.Export"] == 1
    with scopes_disabled():
        assert list(Export.objects.all()) == [other]
    assert naming.file_path and not (tmp_path / "exports/naming.csv").exists()


# --- One rule, two writers ---------------------------------------------------------------------


@pytest.mark.parametrize("as_text", [True, False])
def test_the_database_builds_the_same_rows_as_python(acme, rival, operator, month, as_text):
    """PostgreSQL formats rows itself for speed; SQLite (embedded mode) gets them built in
    Python. Both must say the same, formulas, labels and time zones included."""
    if connection.vendor != "postgresql":
        pytest.skip("compares the PostgreSQL path with the Python one")
    acme.timezone = "Europe/Paris"
    acme.save()
    for value in DANGEROUS:
        MessageFactory(company=rival, to_name=value, status_reason=value, provider=value[:30])
    MessageFactory(company=rival, to_name="-12", to_address="+14155550123")

    def everything():
        with scopes_disabled():
            return selection.select(
                company=None,
                all_companies=True,
                source="logs",
                source_id=None,
                query="period=all",
                include_content=True,
            )

    with scopes_disabled():
        by_database = [tuple(row) for row in selection.rows(everything(), as_text=as_text)]
        chosen = everything()
        fields = columns.FIELDS + columns.CONTENT_FIELDS
        by_python = [
            tuple(row)
            for row in columns.build_rows(
                chosen.queryset.values_list(*fields),
                include_content=True,
                as_time=columns.text_time if as_text else columns.excel_time,
            )
        ]
    assert len(by_database) == 134 + 1 + len(DANGEROUS) + 1
    assert by_database == by_python


@given(st.text(min_size=1, max_size=30))
def test_a_text_is_escaped_exactly_when_xml_needs_it(value):
    # The fast path (no escaping) must agree with xml_text on every text it lets through.
    untouched = excel_file.xml_text(value) == f"<t>{value}</t>"
    assert excel_file.needs_xml_work(value) is not untouched
