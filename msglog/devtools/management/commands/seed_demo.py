"""``manage.py seed_demo [--once]``: demo companies, users, templates, contacts and a log.

The work is done by :mod:`msglog.devtools.demo`; this prints what it did and the demo logins.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from msglog.devtools import demo


class Command(BaseCommand):
    help = (
        "Create the demo companies, users (printed with passwords), templates, contacts, "
        "messages across every status and batches in every state. Safe to run again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="Do nothing but print the logins if the demo is already there "
            "(the app runs this at every start).",
        )

    def handle(self, *args, once: bool = False, **options) -> None:
        report = demo.seed_demo(once=once)
        if report.skipped:
            self.stdout.write("Demo data already present.")
        elif not report.created:
            self.stdout.write("Demo data already present; users and passwords checked.")
        for company, counts in report.created.items():
            summary = ", ".join(f"{n:,} {what}" for what, n in counts.items())
            self.stdout.write(f"{company}: {summary}")
        if report.created:
            self.stdout.write(f"Demo data created in {report.seconds:.1f} s.")
        self.stdout.write("")
        self.stdout.write("Demo logins:")
        self.stdout.write(demo.format_logins(demo.logins()))
