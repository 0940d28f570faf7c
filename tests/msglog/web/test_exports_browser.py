"""An accountant filters the Logs in a real browser and downloads what they see."""

from __future__ import annotations

import csv
from datetime import timedelta

import openpyxl
import pytest
from django.utils import timezone

from tests.browser import sign_in
from tests.factories import PASSWORD, MessageFactory

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_an_accountant_downloads_the_filtered_rows_as_csv_and_excel(
    live_server, chromium, acme, rival, accountant
):
    now = timezone.now()
    for i in range(70):  # more than one page of the table
        MessageFactory(
            company=acme,
            channel="sms" if i % 2 else "email",
            to_address=f"+1415555{i:04d}" if i % 2 else f"client{i}@example.org",
            segments=1,
            credits=1 if i % 2 else 0,
            created_at=now - timedelta(hours=i),
        )
    MessageFactory(company=rival, channel="sms", to_address="+14155559999")

    page = sign_in(chromium, live_server.url, accountant.user.username, PASSWORD)
    # Narrow to SMS with the filter form (htmx swaps the table and pushes the URL).
    page.select_option("#id_channel", "sms")
    page.wait_for_url("**channel=sms**")

    page.click(".export-menu summary")
    with page.expect_download() as download_info:
        page.click(".export-menu button[value=csv]")
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 35
    assert {r["Channel"] for r in rows} == {"SMS"}
    assert "+14155559999" not in {r["Recipient"] for r in rows}

    # The page stayed where it was: the menu is still open, with the filters applied.
    assert page.locator(".export-menu[open]").count() == 1
    with page.expect_download() as download_info:
        page.click(".export-menu button[value=xlsx]")
    assert download_info.value.suggested_filename.endswith(".xlsx")
    with open(download_info.value.path(), "rb") as f:  # the saved file has no extension
        book = openpyxl.load_workbook(f)
    assert book["Messages"].max_row == 36
    assert "Totals" in book.sheetnames
