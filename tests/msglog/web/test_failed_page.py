"""The Failed page: the operator spots a provider outage and drills into its messages.

The story: Acme sends 20 SMS a day through Twilio, of which one usually fails, and 10
emails a day over SMTP. Three days ago Twilio had an outage: half that day's SMS failed
with carrier error 30008. Rival Corp has failures of its own that Acme never sees.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled

from msglog.models import Message
from msglog.queries.failures import Cell, find_outages
from msglog.rules.statuses import Status
from tests.conftest import Persona
from tests.factories import UserFactory

OUTAGE_AGO = 3


def today() -> date:
    return timezone.now().astimezone(UTC).date()


def at_noon(days_ago: int) -> datetime:
    return datetime.combine(today() - timedelta(days=days_ago), time(12), tzinfo=UTC)


def sms(company, days_ago: int, i: int, status: str = Status.DELIVERED, **fields) -> Message:
    fields = {"provider": "twilio", **fields}
    return Message(
        company=company,
        channel="sms",
        to_address=f"+1415{company.pk:03d}{days_ago:02d}{i:03d}",
        category="transactional",
        message_type="reminder",
        status=status,
        created_at=at_noon(days_ago),
        **fields,
    )


def email(company, days_ago: int, i: int, status: str = Status.DELIVERED, **fields) -> Message:
    return Message(
        company=company,
        channel="email",
        to_address=f"p{days_ago}-{i}@{company.slug}.example.org",
        category="transactional",
        message_type="confirmation",
        provider="smtp",
        status=status,
        created_at=at_noon(days_ago),
        **fields,
    )


UNREACHABLE = {"error_code": "30003", "error_message": "Unreachable destination handset"}
CARRIER = {"error_code": "30008", "error_message": "Unknown error"}
NO_MAILBOX = {"error_code": "5.1.1", "error_message": "550 5.1.1 user unknown"}


@pytest.fixture
def traffic(acme, rival):
    """Seven days of Acme traffic with one Twilio outage, and some Rival failures."""
    rows = []
    for ago in range(7):
        failing = 10 if ago == OUTAGE_AGO else 1
        for i in range(20):
            if i < failing:
                kind = CARRIER if ago == OUTAGE_AGO else UNREACHABLE
                rows.append(sms(acme, ago, i, Status.UNDELIVERED, **kind))
            else:
                rows.append(sms(acme, ago, i))
        for i in range(10):
            bounced = i == 0 and ago % 2 == 0  # days 0, 2, 4, 6: one bounce each
            if bounced:
                rows.append(email(acme, ago, i, Status.BOUNCED, **NO_MAILBOX))
            else:
                rows.append(email(acme, ago, i, Status.OPENED))
    rows.append(sms(acme, 0, 900, Status.INSUFFICIENT_CREDITS, provider=""))
    rows.append(sms(acme, 20, 901, Status.UNDELIVERED, **UNREACHABLE))  # outside 7 days
    for i in range(4):
        rows.append(
            sms(rival, 1, i, Status.FAILED, error_code="RIVAL-42", error_message="Rival trouble")
        )
    with scopes_disabled():
        Message.objects.bulk_create(rows)


def links(page: str) -> list[dict[str, list[str]]]:
    """The query of every link to the Logs page."""
    hrefs = re.findall(r'href="(/logs/\?[^"]*)"', page)
    return [parse_qs(urlsplit(html.unescape(h)).query) for h in hrefs]


def reason(report, code: str):
    return next(r for r in report.reasons if r.error_code == code)


@pytest.mark.django_db
def test_failures_are_grouped_by_reason_and_provider(admin, traffic):
    response = admin.client().get("/failed/")
    assert response.status_code == 200
    report = response.context["report"]

    assert reason(report, "30003").count == 6  # one a day but the outage day
    assert reason(report, "30008").count == 10
    assert reason(report, "5.1.1").count == 4
    never_sent = next(r for r in report.reasons if r.status == Status.INSUFFICIENT_CREDITS)
    assert never_sent.count == 1
    assert report.total_failed == 6 + 10 + 4 + 1
    assert report.total_messages == 7 * 30 + 1
    assert [r.error_code for r in report.reasons][:2] == ["30008", "30003"]  # most first

    by_provider = {p.provider: (p.failed, p.total) for p in report.providers}
    assert by_provider == {"twilio": (16, 140), "smtp": (4, 70), "": (1, 1)}

    page = response.content.decode()
    assert "Unknown carrier error" in page  # 30008 in plain words (msglog.rules.errors)
    assert "Unreachable handset" in page
    assert "UTC" in page


@pytest.mark.django_db
def test_one_providers_outage_on_one_day_is_called_out(admin, traffic):
    response = admin.client().get("/failed/")
    report = response.context["report"]
    outage_day = today() - timedelta(days=OUTAGE_AGO)

    assert [(o.provider, o.day) for o in report.outages] == [("twilio", outage_day)]
    sentence = f"Twilio: 50% failed on {outage_day:%b} {outage_day.day} (usually 5%)"
    assert report.outages[0].sentence == sentence
    page = response.content.decode()
    assert sentence in page
    # The day table marks that one cell, and nothing else.
    assert page.count('class="num outage"') == 1


@pytest.mark.django_db
def test_each_group_links_to_exactly_its_messages_on_the_logs_page(admin, traffic):
    client = admin.client()
    page = client.get("/failed/").content.decode()
    outage_day = (today() - timedelta(days=OUTAGE_AGO)).isoformat()

    outage_link = next(q for q in links(page) if q.get("error_code") == ["30008"])
    assert outage_link["tab"] == ["failed"]
    assert outage_link["channel"] == ["sms"]
    assert outage_link["status"] == ["undelivered"]
    assert outage_link["date_to"] == [today().isoformat()]

    day_links = [q for q in links(page) if q.get("date_from") == [outage_day] == q.get("date_to")]
    assert {tuple(q["provider"]) for q in day_links} >= {("twilio",)}
    twilio_day = next(q for q in day_links if q.get("provider") == ["twilio"])
    assert twilio_day["tab"] == ["failed"]

    # Following the day's link lists that day's ten Twilio failures and nothing else.
    logs = client.get("/logs/", {k: v[0] for k, v in twilio_day.items()}).content.decode()
    outage = f"+1415{admin.company.pk:03d}{OUTAGE_AGO:02d}"
    assert logs.count(outage) == 10
    assert f"+1415{admin.company.pk:03d}00000" not in logs  # today's failure


@pytest.mark.django_db
def test_period_and_channel_choose_what_is_counted(admin, traffic):
    client = admin.client()
    report = client.get("/failed/", {"period": "today"}).context["report"]
    assert report.total_failed == 1 + 1 + 1  # Twilio, the bounce, the credits

    response = client.get("/failed/", {"period": "30d", "date_from": "2020-01-01"})
    assert reason(response.context["report"], "30003").count == 7  # 20 days ago too
    # The preset wins over stale dates, and the form shows the dates it stands for.
    assert response.context["form"]["date_from"].value() == today() - timedelta(days=29)

    report = client.get("/failed/", {"channel": "email"}).context["report"]
    assert [r.error_code for r in report.reasons] == ["5.1.1"]
    assert [p.provider for p in report.providers] == ["smtp"]

    day = (today() - timedelta(days=OUTAGE_AGO)).isoformat()
    report = client.get("/failed/", {"date_from": day, "date_to": day}).context["report"]
    assert report.window.period == "custom"
    assert [r.error_code for r in report.reasons] == ["30008"]
    assert len(report.days) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"period": "custom", "date_from": "2025-02-10", "date_to": "2025-02-01"},
        {"period": "custom", "date_from": "2020-01-01", "date_to": "2025-01-01"},
        {"date_from": "not-a-date"},
        {"period": "forever"},
        {"channel": "<script>alert(1)</script>"},
    ],
)
def test_bad_input_shows_an_error_and_the_default_week(admin, traffic, query):
    response = admin.client().get("/failed/", query)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Showing the last 7 days instead" in page
    assert "<script>alert(1)</script>" not in page
    assert response.context["report"].window.date_from == today() - timedelta(days=6)


@pytest.mark.django_db
def test_other_companies_failures_never_show(admin, outsider, traffic):
    page = admin.client().get("/failed/").content.decode()
    assert "RIVAL-42" not in page and "Rival trouble" not in page

    response = outsider.client().get("/failed/")
    assert [r.error_code for r in response.context["report"].reasons] == ["RIVAL-42"]
    page = response.content.decode()
    assert "30008" not in page and "Unknown carrier error" not in page
    assert "Rival trouble" in page  # a code msglog.rules.errors does not know: the provider's words
    assert response.context["report"].outages == []


@pytest.mark.django_db
def test_operators_see_every_company_with_a_breakdown(operator, traffic):
    client = operator.client()
    client.post("/switch-company/", {"company": "all"})
    response = client.get("/failed/")
    report = response.context["report"]
    assert {r.error_code for r in report.reasons} >= {"30008", "RIVAL-42"}
    assert dict(report.by_company) == {"Acme Clinics": 21, "Rival Corp": 4}
    assert "By company" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["admin", "support", "accountant", "viewer"])
def test_every_role_that_reads_the_log_sees_the_page(request, traffic, persona):
    assert request.getfixturevalue(persona).client().get("/failed/").status_code == 200


@pytest.mark.django_db
def test_people_outside_any_company_are_kept_out(traffic, client):
    assert client.get("/failed/").status_code == 302  # to sign in
    loner = Persona(UserFactory(username="lone.wolf"), None, None).client()
    assert loner.get("/failed/").status_code == 403


@pytest.mark.django_db
def test_the_page_costs_a_fixed_number_of_queries(admin, traffic, django_assert_max_num_queries):
    client = admin.client()
    client.get("/failed/")  # warm the session
    with django_assert_max_num_queries(8):
        assert client.get("/failed/", {"period": "30d"}).status_code == 200


def cells_of(provider: str, rates: list[tuple[int, int]]) -> dict:
    start = date(2025, 11, 1)
    return {
        (start + timedelta(days=i), provider): Cell(total=total, failed=failed)
        for i, (failed, total) in enumerate(rates)
    }


def test_what_counts_as_an_outage():
    def flagged(rates):
        return [o.day.day for o in find_outages(cells_of("twilio", rates))[0]]

    assert flagged([(1, 100), (2, 100), (40, 100), (1, 100)]) == [3]
    assert flagged([(0, 3), (0, 3), (3, 3), (0, 3)]) == []  # too few failures to be sure
    assert flagged([(1, 100), (40, 100)]) == []  # two days: no idea what is usual
    # A provider that usually fails 30% must at least double to stand out.
    assert flagged([(30, 100), (30, 100), (55, 100), (30, 100)]) == []
    assert flagged([(30, 100), (30, 100), (65, 100), (30, 100)]) == [3]
