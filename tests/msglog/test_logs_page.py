"""The first Logs page: a support person finds messages by what they know."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import MessageFactory, TemplateFactory


@pytest.fixture
def acme_traffic(acme):
    now = timezone.now()
    reminder = TemplateFactory(company=acme, name="Appointment reminder", message_type="reminder")
    return {
        "jane": MessageFactory(
            company=acme,
            to_name="Jane Doe",
            to_address="jane@example.org",
            status="delivered",
            created_at=now - timedelta(hours=1),
        ),
        "sms": MessageFactory(
            company=acme,
            channel="sms",
            to_address="+14155550100",
            to_name="Sam Smith",
            status="undelivered",
            template=reminder,
            message_type="reminder",
            created_at=now - timedelta(days=3),
        ),
        "dropped": MessageFactory(
            company=acme,
            to_address="gone@example.org",
            status="suppressed",
            created_at=now - timedelta(days=10),
        ),
    }


def rows(response) -> str:
    return response.content.decode()


@pytest.mark.django_db
def test_newest_first(support, acme_traffic):
    html = rows(support.client().get("/logs/"))
    assert html.index("jane@example.org") < html.index("+14155550100") < html.index("gone@")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "found", "not_found"),
    [
        ({"q": "jane"}, ["jane@example.org"], ["+14155550100"]),
        ({"q": "Dropped"}, ["gone@example.org"], ["jane@example.org"]),  # a Courier word
        ({"channel": "sms"}, ["+14155550100"], ["jane@example.org"]),
        ({"status": ["delivered", "suppressed"]}, ["jane@", "gone@"], ["+14155550100"]),
        ({"message_type": "reminder"}, ["+14155550100"], ["jane@"]),
    ],
)
def test_filters_find_exactly_the_matching_messages(support, acme_traffic, query, found, not_found):
    html = rows(support.client().get("/logs/", query))
    for text in found:
        assert text in html
    for text in not_found:
        assert text not in html


@pytest.mark.django_db
def test_date_range_and_template_filters(support, acme_traffic):
    week_ago = (timezone.now() - timedelta(days=7)).date().isoformat()
    html = rows(support.client().get("/logs/", {"date_from": week_ago}))
    assert "gone@example.org" not in html and "jane@example.org" in html
    template = acme_traffic["sms"].template
    html = rows(support.client().get("/logs/", {"template": template.pk}))
    assert "+14155550100" in html and "jane@" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"date_from": "not-a-date"},
        {"status": "no-such-status"},
        {"template": "99999999999999999999"},
        {"channel": "<script>alert(1)</script>"},
        {"q": "'; DROP TABLE msglog_message; --"},
        {"page": "-3"},
        {"page": "99999"},
        {"sort": "nonexistent"},
    ],
)
def test_bad_input_never_breaks_the_page(support, acme_traffic, query):
    response = support.client().get("/logs/", query)
    assert response.status_code in {200, 404}
    assert "<script>alert(1)</script>" not in response.content.decode()


@pytest.mark.django_db
def test_a_row_opens_its_message(support, acme_traffic):
    jane = acme_traffic["jane"]
    assert jane.get_absolute_url() in rows(support.client().get("/logs/"))
    detail = rows(support.client().get(jane.get_absolute_url()))
    assert "Jane Doe" in detail and "Delivered" in detail


@pytest.mark.django_db
def test_the_page_reads_a_bounded_number_of_rows(support, acme, django_assert_max_num_queries):
    for i in range(60):
        MessageFactory(company=acme, to_address=f"bulk{i}@example.org")
    client = support.client()
    with django_assert_max_num_queries(12):
        response = client.get("/logs/")
    assert response.status_code == 200
    assert "bulk59@example.org" in rows(response)
    assert "bulk0@example.org" not in rows(response)  # on page 2: 50 a page
