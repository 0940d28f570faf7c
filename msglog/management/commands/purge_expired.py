"""``manage.py purge_expired``: run the nightly retention purge now, in this process."""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand
from django_scopes import scopes_disabled

from companies.models import Company
from msglog.services import retention


class Command(BaseCommand):
    help = "Delete every company's messages, events and export files older than its retention."

    def add_arguments(self, parser):
        parser.add_argument("--company", type=int, action="append", default=[], help="company id")
        parser.add_argument("--chunk", type=int, default=retention.CHUNK, help="rows per commit")
        parser.add_argument("--pause", type=float, default=0.0, help="seconds between chunks")

    def handle(self, *args, company: list[int], chunk: int, pause: float, **options):
        companies = Company.objects.filter(pk__in=company) if company else Company.objects.all()
        report: dict = {}
        start = time.perf_counter()
        timings: list[float] = []
        with scopes_disabled():
            for each in companies:
                counts = retention.purge_company(
                    each, chunk=max(1, chunk), pause=pause, timings=timings
                )
                report[each.slug] = {k: v for k, v in counts.items() if v}
        report["seconds"] = round(time.perf_counter() - start, 2)
        report["chunks"] = len(timings)
        report["longest_chunk_ms"] = round(max(timings, default=0) * 1000, 1)
        self.stdout.write(json.dumps(report))
