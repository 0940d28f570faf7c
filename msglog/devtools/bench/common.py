"""What every benchmark shares: the signed-in clients, timing, the data's biggest company."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django_scopes import scopes_disabled

from companies.models import Company, Membership
from companies.roles import Role
from msglog.models import DailyRollup

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
