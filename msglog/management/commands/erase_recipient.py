"""``manage.py erase_recipient ADDRESS``: an operator erases one recipient across companies."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django_scopes import scopes_disabled

from companies.models import Company
from msglog.services import erasure


class Command(BaseCommand):
    help = (
        "Erase everything logged for one email address or phone number (GDPR): messages, "
        "events, raw payloads, suppressions, contact fields, export files. Every company, "
        "unless --company names some. Each company's audit log says an erasure happened."
    )

    def add_arguments(self, parser):
        parser.add_argument("address", help="email address or phone number (+E.164)")
        parser.add_argument(
            "--company", action="append", default=[], help="company slug (repeatable)"
        )
        parser.add_argument(
            "--keep-suppression",
            action="store_true",
            help="keep the address on the do-not-send lists",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count what would go, delete nothing"
        )

    def handle(self, *args, address: str, company: list[str], **options):
        companies = Company.objects.all()
        if company:
            companies = companies.filter(slug__in=company)
            missing = set(company) - set(companies.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"No company with slug {', '.join(sorted(missing))}.")
        report = {}
        with scopes_disabled():
            for each in companies:
                try:
                    target = erasure.target_for_address(each, address)
                except erasure.ErasureError as error:
                    raise CommandError(str(error)) from None
                if options["dry_run"]:
                    report[each.slug] = erasure.preview(target)
                    continue
                counts = erasure.erase(
                    target,
                    keep_suppression=options["keep_suppression"],
                    how="by a platform operator (command line)",
                )
                report[each.slug] = {k: v for k, v in counts.items() if v}
        self.stdout.write(json.dumps(report, indent=2))
