"""The first Logs page: a support person finds messages by what they know."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled

from msglog.models import Message
from msglog.services import rollups
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


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tab", "shown", "hidden"),
    [
        ("email", "jane@example.org", "+14155550100"),
        ("sms", "+14155550100", "jane@example.org"),
        ("reminders", "+14155550100", "jane@example.org"),
        ("failed", "+14155550100", "jane@example.org"),
    ],
)
def test_tabs(support, acme_traffic, tab, shown, hidden):
    html = rows(support.client().get("/logs/", {"tab": tab}))
    assert shown in html and hidden not in html
    assert 'aria-current="page" data-tab="' + tab + '"' in html


@pytest.mark.django_db
def test_the_failed_tab_holds_every_failure_kind_and_nothing_else(support, acme_traffic):
    html = rows(support.client().get("/logs/", {"tab": "failed", "period": "all"}))
    assert "gone@example.org" in html  # suppressed counts as failed
    assert "+14155550100" in html  # undelivered
    assert "jane@example.org" not in html


@pytest.mark.django_db
def test_older_and_newer_pages_follow_each_other_without_gaps(support, acme):
    now = timezone.now()
    same_moment = now - timedelta(hours=2)
    for i in range(120):  # ties on created_at must neither repeat nor vanish across pages
        MessageFactory(
            company=acme,
            to_address=f"m{i:03d}@example.org",
            created_at=same_moment if i % 3 == 0 else now - timedelta(minutes=i),
        )
    client = support.client()
    seen: list[str] = []
    url, params = "/logs/", {"per_page": 25}
    cursors = []
    while True:
        response = client.get(url, params)
        page = response.context["table"].page
        seen += [row.record.to_address for row in page.object_list]
        if not page.has_next():
            break
        cursors.append(page.next_cursor)
        params = {"per_page": 25, "cursor": page.next_cursor}
    assert len(seen) == 120 and len(set(seen)) == 120
    # And back: the newer page of page 3 is page 2.
    page3 = client.get(url, {"per_page": 25, "cursor": cursors[1]}).context["table"].page
    page2 = client.get(url, {"per_page": 25, "cursor": page3.previous_cursor})
    assert [r.record.to_address for r in page2.context["table"].page.object_list] == seen[25:50]


@pytest.mark.django_db
def test_a_capped_count_instead_of_counting_everything(support, acme, monkeypatch):
    from msglog.queries import pagination

    monkeypatch.setattr(pagination, "COUNT_CAP", 5)
    MessageFactory.create_batch(8, company=acme)
    # Errors are not in the daily rollups: the matching messages themselves are counted.
    response = support.client().get("/logs/", {"has_errors": "false"})
    assert response.context["match_count"] == 5 and response.context["match_more"] is True
    assert "5+ messages match" in rows(response)


@pytest.mark.django_db
def test_the_exact_count_comes_from_the_rollups_when_they_can_answer(support, acme, monkeypatch):
    from msglog.queries import pagination

    monkeypatch.setattr(pagination, "COUNT_CAP", 5)
    MessageFactory.create_batch(8, company=acme)
    with scopes_disabled():
        rollups.rebuild([acme.pk])
    response = support.client().get("/logs/", {"channel": "email"})
    with scopes_disabled():
        emails = Message.objects.filter(company=acme, channel="email").count()
    assert response.context["match_count"] == emails and response.context["match_more"] is False


@pytest.mark.django_db
def test_sorting_by_any_column_pages_with_numbers(support, acme_traffic):
    response = support.client().get("/logs/", {"sort": "status", "period": "all"})
    records = [row.record for row in response.context["table"].page.object_list]
    assert [r.status for r in records] == sorted(r.status for r in records)
    for column in [
        "channel",
        "category",
        "recipient",
        "message_type",
        "template",
        "credits",
        "-created_at",
        "created_at",
    ]:
        assert support.client().get("/logs/", {"sort": column}).status_code == 200


@pytest.mark.django_db
def test_hidden_columns_stay_hidden_and_a_link_carries_them(support, acme_traffic):
    client = support.client()
    response = client.post(
        "/logs/columns/", {"cols": ["created_at", "channel"], "next": "/logs/?tab=sms"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/logs/?tab=sms&cols=created_at&cols=channel"
    html = rows(client.get("/logs/"))  # no cols in the URL: the saved choice
    assert "Sending Status" in html and "Message Type</a>" not in html
    # A colleague opening the shared link sees the same columns, whatever they saved.
    from tests.conftest import Persona
    from tests.factories import MembershipFactory, UserFactory

    colleague = UserFactory(username="cole.colleague")
    MembershipFactory(user=colleague, company=support.company, role="support")
    shared = rows(
        Persona(colleague, support.company, "support")
        .client()
        .get("/logs/?tab=sms&cols=created_at&cols=channel")
    )
    assert "Message Type</a>" not in shared and "Date</a>" in shared


@pytest.mark.django_db
def test_cards_come_from_rollups_and_follow_the_filters(support, acme):
    from django_scopes import scopes_disabled

    now = timezone.now()
    for status, n in [("delivered", 19), ("bounced", 1), ("queued", 3)]:
        for _ in range(n):
            MessageFactory(company=acme, status=status, created_at=now)
    MessageFactory(company=acme, status="failed", channel="sms", created_at=now)
    with scopes_disabled():
        rollups.rebuild([acme.pk])
    response = support.client().get("/logs/")
    cards = response.context["cards"]
    assert (cards.total, cards.delivered, cards.sent) == (24, 19, 21)
    assert cards.failed_today == 2 and cards.band == "fair"  # 19 / 21 = 90.5 %
    assert response.context["cards_from_rollups"] is True
    cards = support.client().get("/logs/", {"channel": "sms"}).context["cards"]
    assert (cards.total, cards.delivered, cards.band) == (1, 0, "alarming")
    # A search cannot be answered by rollups: the figures count the matching messages.
    response = support.client().get("/logs/", {"q": "no-such-recipient"})
    assert response.context["cards_from_rollups"] is False
    assert response.context["cards"].total == 0


@pytest.mark.django_db
def test_rollups_follow_status_changes(acme):
    from django_scopes import scope

    from msglog.models import DailyRollup
    from msglog.services.events import record_event

    message = MessageFactory(company=acme, status="queued")
    with scope(company=acme.pk):
        rollups.count_created([message])
        record_event(message, "sent")
        record_event(message, "delivered")
        buckets = dict(DailyRollup.objects.values_list("status", "messages"))
    assert buckets == {"queued": 0, "sent": 0, "delivered": 1}


@pytest.mark.django_db
def test_the_histogram_has_every_day_of_the_period(support, acme_traffic):
    response = support.client().get("/logs/", {"period": "7d"})
    histogram = response.context["histogram"]
    assert len(histogram["days"]) == 7
    assert set(histogram["series"]) == {
        "delivered",
        "engaged",
        "in_flight",
        "failed",
        "complained",
        "canceled",
    }
    assert 'id="histogram-data"' in rows(response)


@pytest.mark.django_db
def test_an_htmx_refresh_returns_the_same_view(support, acme_traffic):
    response = support.client().get("/logs/", {"tab": "email"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "jane@example.org" in rows(response)
