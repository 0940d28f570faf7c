"""`manage.py bench`: the issues' benchmarks, printed as one JSON object."""

import json
import os
import platform

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from msglog.devtools.bench.common import total_messages
from msglog.devtools.bench.runner import BENCHMARKS


class Command(BaseCommand):
    help = "Run the benchmarks (on PostgreSQL, data from seed_bulk) and print JSON figures."

    def add_arguments(self, parser):
        parser.add_argument(
            "--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these benchmarks"
        )

    def handle(self, *args, only=None, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Benchmarks run on PostgreSQL: set DATABASE_URL (./dev bench).")
        figures = {
            "database": connection.vendor,
            "messages_in_log": total_messages(),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        }
        for name in only or BENCHMARKS:
            figures[name] = BENCHMARKS[name]()
        self.stdout.write(json.dumps(figures, indent=2, default=str))
