"""What a support person does on the Logs page, in a real (headless) browser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled

from msglog.services import rollups
from tests.browser import sign_in
from tests.factories import (
    PASSWORD,
    MembershipFactory,
    MessageFactory,
    StatusEventFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def busy_week(acme, rival):
    """A week of Acme's traffic, with one SMS that never reached the handset."""
    now = timezone.now()
    for day in range(7):
        for i in range(6):
            MessageFactory(
                company=acme,
                to_address=f"client{day}{i}@example.org",
                status="delivered",
                created_at=now - timedelta(days=day, hours=i),
            )
    MessageFactory(
        company=acme,
        to_name="Jane Doe",
        to_address="jane.doe@example.org",
        status="delivered",
        created_at=now - timedelta(minutes=5),
    )
    unreachable = MessageFactory(
        company=acme,
        channel="sms",
        to_name="Sam Smith",
        to_address="+14155550123",
        status="undelivered",
        error_code="30003",
        error_message="Unreachable destination handset",
        segments=1,
        credits=1,
        created_at=now - timedelta(days=2),
    )
    StatusEventFactory(
        message=unreachable,
        status="undelivered",
        error_code="30003",
        error_message="Unreachable destination handset",
    )
    MessageFactory(company=rival, to_address="secret@rival.example", created_at=now)
    with scopes_disabled():
        rollups.rebuild()
    return unreachable


def table_text(page) -> str:
    return page.inner_text("#log-results")


@pytest.mark.django_db(transaction=True)
def test_support_finds_a_message_and_reads_why_it_failed(live_server, chromium, support, busy_week):
    page = sign_in(chromium, live_server.url, support.user.username, PASSWORD)
    assert "secret@rival.example" not in table_text(page)

    # "The customer says they didn't get the email": search by part of the address.
    page.fill("#id_q", "jane.doe")
    page.wait_for_function("!document.querySelector('#log-results').innerText.includes('client0')")
    assert "jane.doe@example.org" in table_text(page)
    assert "q=jane.doe" in page.url

    # The Failed tab shows what went wrong this week.
    page.fill("#id_q", "")
    page.click("nav.tabs a[data-tab=failed]")
    page.wait_for_url("**tab=failed**")
    assert "+14155550123" in table_text(page) and "client0" not in table_text(page)

    # Opening the row shows the panel with the error in plain words, without leaving.
    url_before = page.url
    page.click("#log-results tr[hx-get] >> text=Sam Smith")
    page.wait_for_selector("#panel .panel-close")
    panel = page.inner_text("#panel")
    assert "30003" in panel and "handset" in panel.lower()
    assert page.url == url_before
    page.click("#panel .panel-close")
    page.wait_for_function("document.querySelector('#panel').children.length === 0")


@pytest.mark.django_db(transaction=True)
def test_dragging_across_the_histogram_filters_those_days(live_server, chromium, admin, busy_week):
    page = sign_in(chromium, live_server.url, admin.user.username, PASSWORD)
    page.goto(f"{live_server.url}/logs/?period=7d")
    overlay = page.wait_for_selector("#histogram-chart .u-over")
    box = overlay.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.05, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.30, y, steps=8)
    page.mouse.up()
    page.wait_for_url("**period=custom**")
    assert "date_from=" in page.url and "date_to=" in page.url
    assert page.input_value("#id_period") == "custom"
    assert "jane.doe@example.org" not in table_text(page)  # today is outside the dragged days


@pytest.mark.django_db(transaction=True)
def test_a_hidden_column_stays_hidden_and_a_shared_link_opens_the_same_view(
    live_server, chromium, acme, support, busy_week
):
    page = sign_in(chromium, live_server.url, support.user.username, PASSWORD)
    page.click("nav.tabs a[data-tab=sms]")
    page.wait_for_url("**tab=sms**")
    page.click(".columns-chooser summary")
    page.uncheck(".columns-chooser input[value=message_type]")
    page.click(".columns-chooser button[type=submit]")
    page.wait_for_load_state()
    assert "Message Type" not in page.inner_text("#log-results thead")
    page.reload()
    assert "Message Type" not in page.inner_text("#log-results thead")

    shared_url = page.url
    colleague = UserFactory(username="cole.colleague")
    MembershipFactory(user=colleague, company=acme, role="support")
    other = sign_in(chromium, live_server.url, "cole.colleague", PASSWORD)
    other.goto(shared_url)
    assert "Message Type" not in other.inner_text("#log-results thead")
    assert other.get_attribute("nav.tabs a[aria-current=page]", "data-tab") == "sms"
    assert "+14155550123" in table_text(other) and "jane.doe" not in table_text(other)


@pytest.mark.django_db(transaction=True)
def test_tabs_sorting_and_paging_never_reload_the_page(live_server, chromium, support, busy_week):
    page = sign_in(chromium, live_server.url, support.user.username, PASSWORD)
    page.evaluate("window.stillTheSamePage = true")
    page.click("nav.tabs a[data-tab=email]")
    page.wait_for_url("**tab=email**")
    assert "+14155550123" not in table_text(page)
    page.click("#log-results thead th a >> text=Recipient")
    page.wait_for_url("**sort=recipient**")
    assert "tab=email" in page.url  # the tab survives the sort
    page.fill("#id_q", "client1")
    page.wait_for_url("**q=client1**")
    assert "sort=recipient" in page.url and "tab=email" in page.url
    assert page.evaluate("window.stillTheSamePage") is True
