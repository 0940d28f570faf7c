"""``manage.py seed_bulk --messages N [--companies K]``: synthetic data for benchmarks."""

import json

from django.core.management.base import BaseCommand, CommandError

from msglog.devtools.bulk_seed import seed_bulk


class Command(BaseCommand):
    help = (
        "Add N synthetic messages with their status events, spread over K bulk companies "
        "and the last 60 days (PostgreSQL: binary COPY; SQLite: bulk inserts)."
    )
    requires_system_checks = []  # a data loader: it needs the models, not the URLs or views

    def add_arguments(self, parser):
        parser.add_argument("--messages", type=int, required=True, help="messages to add")
        parser.add_argument("--companies", type=int, default=5, help="bulk companies (5)")
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="parallel COPY connections (PostgreSQL; default 2)",
        )
        parser.add_argument(
            "--chunk", type=int, default=20_000, help="messages per COPY transaction (20,000)"
        )
        parser.add_argument("--seed", type=int, default=None, help="random seed")
        parser.add_argument(
            "--fk-checks",
            action="store_true",
            help="keep the per-row foreign-key triggers (slower)",
        )
        parser.add_argument(
            "--vacuum", action="store_true", help="VACUUM the message tables before ANALYZE"
        )

    def handle(self, *args, **options):
        if options["messages"] < 0 or options["companies"] < 1 or options["chunk"] < 1:
            raise CommandError("--messages must be >= 0, --companies and --chunk >= 1")
        figures = seed_bulk(
            options["messages"],
            options["companies"],
            workers=options["workers"],
            chunk=options["chunk"],
            seed=options["seed"],
            fk_checks=options["fk_checks"],
            vacuum=options["vacuum"],
            log=self.stderr if options["verbosity"] >= 1 else None,
        )
        self.stdout.write(
            f"Added {figures['messages']:,} messages and {figures['events']:,} events to "
            f"{figures['companies']} companies in {figures['seconds']:.1f}s "
            f"({figures['messages_per_s']:,} messages/s, {figures['events_per_s']:,} events/s)."
        )
        self.stdout.write(json.dumps(figures))
