"""`manage.py seed_bulk`: synthetic messages whose stored fields are what their events say."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django_scopes import scopes_disabled

from companies.models import Company
from msglog.models import Batch, DailyRollup, Message, StatusEvent
from msglog.rules.statuses import FAILED_GROUP, Status, derive
from tests.checks import fact_of

ROOT = Path(__file__).resolve().parents[3]


def seed(**options) -> dict:
    out = StringIO()
    call_command("seed_bulk", stdout=out, stderr=StringIO(), **options)
    lines = out.getvalue().strip().splitlines()
    assert lines[0].startswith("Added ")
    return json.loads(lines[-1])


def stored_matches_events(messages) -> list[str]:
    """Messages whose status fields differ from what derive() makes of their events."""
    events = defaultdict(list)
    for event in StatusEvent.objects.filter(message__in=messages):
        events[event.message_id].append(fact_of(event))
    wrong = []
    for message in messages:
        derived = derive(events[message.pk]).as_fields()
        stored = {name: getattr(message, name) for name in derived}
        if stored != derived:
            wrong.append(f"{message.public_id}: stored {stored}, events say {derived}")
    return wrong


@pytest.mark.django_db(transaction=True)
def test_seed_bulk_writes_messages_their_events_and_their_counts():
    figures = seed(messages=3_000, companies=2, workers=2, chunk=700, seed=7)
    first_events = figures["events"]

    with scopes_disabled():
        companies = Company.objects.filter(slug__in=["bulk-1", "bulk-2"])
        assert companies.count() == 2
        messages = Message.objects.all()
        assert messages.count() == 3_000 == figures["messages"]
        assert StatusEvent.objects.count() == first_events
        assert 3.5 < first_events / 3_000 < 5.5  # queued, sending, sent, delivered, opened...

        # Every message has its timeline, under its own company, never before it was created.
        assert not messages.filter(~Q(pk__in=StatusEvent.objects.values("message_id"))).exists()
        assert not StatusEvent.objects.exclude(company_id=F("message__company_id")).exists()
        assert not StatusEvent.objects.filter(occurred_at__lt=F("message__created_at")).exists()
        assert not StatusEvent.objects.filter(received_at__gt=timezone.now()).exists()
        assert not StatusEvent.objects.filter(dedupe_key__regex=r"^.{0,63}$").exists()

        # Ids and content are consistent with the templates.
        public_ids = list(messages.values_list("public_id", flat=True))
        assert len(set(public_ids)) == 3_000 and {len(p) for p in public_ids} == {16}
        assert not messages.exclude(channel=F("template__channel")).exists()
        assert not messages.exclude(message_type=F("template__message_type")).exists()
        assert not messages.exclude(category=F("template__category")).exists()
        assert not messages.exclude(template_id=F("template_version__template_id")).exists()
        sms = messages.filter(channel="sms")
        assert not sms.filter(Q(segments=0) | Q(encoding="")).exists()
        assert (
            not sms.exclude(to_address__regex=r"^\+1555[0-9]{7}$")
            .exclude(status=Status.INVALID_RECIPIENT)
            .exists()
        )
        assert not messages.filter(channel="email", subject="").exists()
        assert 0.5 < messages.filter(channel="email").count() / 3_000 < 0.7

        # A realistic mix: mostly delivered or opened, a few percent failed, a little of all.
        by_status = dict(messages.values_list("status").annotate(n=Count("id")))
        assert by_status.get(Status.DELIVERED, 0) + by_status.get(Status.OPENED, 0) > 1_800
        failed = sum(n for status, n in by_status.items() if status in FAILED_GROUP)
        assert 0.03 < failed / 3_000 < 0.12
        assert len(by_status) >= 12

        # The stored status fields are exactly what the events say: a random sample, and
        # the newest ones, which are still in flight.
        ids = random.Random(1).sample(public_ids, 250)
        sample = list(messages.filter(public_id__in=ids))
        sample += list(messages.order_by("-created_at")[:40])
        assert stored_matches_events(sample) == []

        # The daily rollups count them, and the batches count theirs.
        per_company = dict(messages.values_list("company_id").annotate(n=Count("id")))
        rolled = dict(DailyRollup.objects.values_list("company_id").annotate(n=Sum("messages")))
        assert rolled == per_company
        batched = messages.exclude(batch=None).count()
        assert batched > 0
        assert Batch.objects.aggregate(n=Sum("total_count"))["n"] == batched

    # Running it again appends.
    again = seed(messages=1_000, companies=2, workers=2, chunk=400)
    with scopes_disabled():
        assert Company.objects.filter(slug__startswith="bulk-").count() == 2
        assert Message.objects.count() == 4_000
        assert StatusEvent.objects.count() == first_events + again["events"]
        assert Message.objects.values("public_id").distinct().count() == 4_000
        assert DailyRollup.objects.aggregate(n=Sum("messages"))["n"] == 4_000


@pytest.mark.django_db
def test_seed_bulk_works_inside_a_transaction():
    figures = seed(messages=400, companies=1, seed=3)
    with scopes_disabled():
        assert Message.objects.count() == 400
        assert StatusEvent.objects.count() == figures["events"]
        assert stored_matches_events(list(Message.objects.order_by("-created_at")[:100])) == []


@pytest.mark.embedded
def test_seed_bulk_runs_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["MSGLOG_VAR_DIR"] = str(tmp_path)

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    manage("migrate", "-v0")
    figures = json.loads(
        manage("seed_bulk", "--messages", "300", "--companies", "2").splitlines()[-1]
    )
    assert figures["backend"] == "sqlite"
    assert figures["messages"] == 300 and figures["events"] > 900
