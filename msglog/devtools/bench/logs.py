"""The Logs page and its stats cards at millions of messages, beside the Django admin."""

from __future__ import annotations

from datetime import timedelta

from django.test import RequestFactory
from django.utils import timezone
from django_scopes import scope

from companies.models import Company
from msglog.devtools.bench.common import (
    BENCH_OPERATOR,
    BENCH_USER,
    allow_test_client,
    biggest_company,
    company_messages,
    signed_in,
    timed,
)
from msglog.models import Message
from msglog.queries.filters import MessageFilter
from msglog.queries.pagination import encode_cursor
from msglog.web.logs import LogsView


def search_term(company: Company) -> str:
    """A substring of one recipient's address, as a support person would type it."""
    with scope(company=company.pk):
        address = (
            Message.objects.filter(company=company, channel="email")
            .order_by("-created_at")
            .values_list("to_address", flat=True)[500]
        )
    return address.split("@")[0][-7:]


def page_cursor(company: Company, page: int, per_page: int = 50) -> str:
    """The cursor a person reaches by clicking "Older" page - 1 times."""
    with scope(company=company.pk):
        row = (
            Message.objects.filter(company=company)
            .order_by("-created_at", "-id")
            .values_list("created_at", "id")[(page - 1) * per_page - 1]
        )
    return encode_cursor("after", *row)


def bench_logs(runs: int = 30) -> dict:
    """/logs/ first pages as full HTML, and the same views in the Django admin."""
    allow_test_client()
    company = biggest_company()
    ours = signed_in(BENCH_USER, company)
    admin = signed_in(BENCH_OPERATOR, company, superuser=True)
    week_ago = (timezone.now() - timedelta(days=6)).date().isoformat()
    term = search_term(company)
    failed = (
        "undelivered,bounced,failed,invalid_recipient,insufficient_credits,"
        "channel_disabled,suppressed"
    )
    views = {
        "no_filter": (
            "/logs/?period=all",
            f"/admin/msglog/message/?company__id__exact={company.pk}",
        ),
        "failed_group": (
            "/logs/?tab=failed&period=all",
            f"/admin/msglog/message/?company__id__exact={company.pk}&status__in={failed}",
        ),
        "sms_last_7_days": (
            "/logs/?channel=sms&period=7d",
            f"/admin/msglog/message/?company__id__exact={company.pk}"
            f"&channel__exact=sms&created_at__gte={week_ago}",
        ),
        "search_email": (
            f"/logs/?period=all&q={term}",
            f"/admin/msglog/message/?company__id__exact={company.pk}&q={term}",
        ),
        "page_200": (
            f"/logs/?period=all&cursor={page_cursor(company, 200)}",
            f"/admin/msglog/message/?company__id__exact={company.pk}&p=200",
        ),
    }
    figures: dict = {"company_messages": company_messages(company), "search_term": term}
    admin_runs = max(5, runs // 3)  # the admin is slow at this size; fewer runs suffice
    for name, (our_url, admin_url) in views.items():
        for client, url in ((ours, our_url), (admin, admin_url)):
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
        mine = timed(lambda u=our_url: ours.get(u), runs)
        theirs = timed(lambda u=admin_url: admin.get(u), admin_runs, warmup=1)
        figures[name] = {
            "ours": mine,
            "admin": theirs,
            "admin_over_ours": round(theirs["median_ms"] / mine["median_ms"], 1),
        }
    figures["page_200_over_page_1"] = round(
        figures["page_200"]["ours"]["median_ms"] / figures["no_filter"]["ours"]["median_ms"], 2
    )
    return figures


def bench_stats(runs: int = 50) -> dict:
    """Stats cards and histogram for the last 30 days, as the Logs page computes them."""
    company = biggest_company()
    request = RequestFactory().get("/logs/", {"period": "30d"})
    request.company, request.all_companies = company, False
    view = LogsView()
    view.request = request

    def compute():
        with scope(company=company.pk):
            filterset = MessageFilter(request.GET, queryset=Message.objects.none(), company=company)
            filterset.is_valid()
            return view.stats(filterset, filterset.qs)

    return {"cards_and_histogram_30_days": timed(compute, runs)}
