"""Benchmarks of the issues' targets, run by `manage.py bench` on data from `seed_bulk`.

Each benchmark returns a dict of figures; the command prints them as one JSON object.
Pages are fetched through the Django test client as full HTML, so every middleware,
query and template is in the measurement.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from companies.models import Company, Membership
from companies.roles import Role

from . import bench_sending
from .bench_batches import bench_batch_create, bench_batch_stop
from .bench_exports import bench_exports
from .bench_retention import bench_retention
from .bench_webhooks import bench_webhooks
from .models import DailyRollup, Message
from .pagination import encode_cursor

BENCH_USER = "bench-admin"
BENCH_OPERATOR = "bench-operator"


def timed(fn: Callable[[], object], runs: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 1),
        "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 1),
        "runs": runs,
    }


def allow_test_client() -> None:
    """The test client speaks plain HTTP to 'testserver'; production settings refuse both."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.SECURE_SSL_REDIRECT = False


def biggest_company() -> Company:
    with scopes_disabled():
        row = (
            DailyRollup.objects.values("company_id")
            .order_by()
            .annotate(n=Sum("messages"))
            .order_by("-n")
            .first()
        )
    if row is None:
        raise SystemExit("No data: run `manage.py seed_bulk --messages 5000000 --companies 5`.")
    return Company.objects.get(pk=row["company_id"])


def signed_in(username: str, company: Company | None, superuser: bool = False) -> Client:
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"is_superuser": superuser, "is_staff": superuser}
    )
    if company is not None:
        with scopes_disabled():
            Membership.objects.get_or_create(
                user=user, company=company, defaults={"role": Role.ADMIN}
            )
    client = Client()
    client.force_login(user)
    if superuser and company is not None:
        client.post("/switch-company/", {"company": company.pk})
    return client


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
    from django.test import RequestFactory

    from .filters import MessageFilter
    from .views.logs import LogsView

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


def company_messages(company: Company) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(messages), 0) FROM msglog_dailyrollup WHERE company_id = %s",
            [company.pk],
        )
        return int(cursor.fetchone()[0])


def total_messages() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(messages), 0) FROM msglog_dailyrollup")
        return int(cursor.fetchone()[0])


BENCHMARKS: dict[str, Callable[[], dict]] = {
    "logs": bench_logs,
    "stats": bench_stats,
    "retention": bench_retention,
    "webhooks": bench_webhooks,
    "enqueue": bench_sending.bench_enqueue,
    "throughput": bench_sending.bench_throughput,
    "exports": bench_exports,
    "batch_stop": bench_batch_stop,  # issue 6
    "batch_create": bench_batch_create,  # issue 6
}
