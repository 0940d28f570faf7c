"""seed_demo: a complete, honest demo, that a second run leaves exactly as it was.

The demo is seeded once for the module (twice, in fact: the second run must add
nothing) inside a transaction that is rolled back at the end, so no other test sees it.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F, Sum
from django.test import Client
from django.utils import timezone
from django_scopes import scopes_disabled

from companies.models import Company, Contact, CreditLedgerEntry, Membership
from companies.roles import Role
from msglog.devtools import demo
from msglog.models import Batch, Message, StatusEvent, Suppression
from msglog.rules.statuses import (
    DELIVERED_GROUP,
    FAILED_GROUP,
    NEVER_SENT,
    STAGE_FIELDS,
    EventFact,
    Status,
    derive,
)
from templates_app.models import MessageTemplate, MessageTemplateVersion

COUNTED = (
    Company, Membership, Contact, CreditLedgerEntry, MessageTemplate, MessageTemplateVersion,
    Message, StatusEvent, Batch, Suppression,
)  # fmt: skip
DEMO_SLUGS = [spec.slug for spec in demo.COMPANIES]


def row_counts() -> dict[str, int]:
    with scopes_disabled():
        counts = {model.__name__: model.objects.count() for model in COUNTED}
    counts["User"] = get_user_model().objects.count()
    return counts


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@dataclass
class Seeded:
    first_output: str
    second_output: str
    once_output: str
    after_first: dict[str, int]
    after_second: dict[str, int]
    after_once: dict[str, int]


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        first = seed()
        after_first = row_counts()
        second = seed()
        after_second = row_counts()
        once = seed("--once")
        # Every foreign key holds (the bulk paths bypass the ORM). On PostgreSQL this also
        # fires the deferred checks once here, instead of after every test's rollback.
        connection.check_constraints()
        yield Seeded(first, second, once, after_first, after_second, row_counts())
        transaction.set_rollback(True)


pytestmark = pytest.mark.django_db


def test_a_second_run_adds_nothing(seeded):
    assert seeded.after_first["Message"] > 0
    assert seeded.after_second == seeded.after_first
    assert seeded.after_once == seeded.after_first
    assert "created in" in seeded.first_output
    assert "already present" in seeded.second_output
    assert "already present" in seeded.once_output


def test_every_run_prints_the_logins(seeded):
    for output in (seeded.first_output, seeded.second_output, seeded.once_output):
        for login in demo.logins():
            assert login.username in output
            assert login.password in output


def test_the_printed_logins_work(seeded):
    admin = next(row for row in demo.logins() if row.role == Role.ADMIN)
    assert Client().login(username=admin.username, password=admin.password)
    operator = get_user_model().objects.get(username=demo.OPERATOR[0])
    assert operator.is_superuser and operator.check_password(demo.OPERATOR[1])


def test_every_role_in_every_company_and_one_user_in_two(seeded):
    with scopes_disabled():
        memberships = Membership.objects.filter(company__slug__in=DEMO_SLUGS)
        roles = defaultdict(set)
        per_user = Counter()
        for slug, role, username in memberships.values_list(
            "company__slug", "role", "user__username"
        ):
            roles[slug].add(role)
            per_user[username] += 1
    assert all(roles[slug] == set(Role.values) for slug in DEMO_SLUGS)
    assert max(per_user.values()) >= 2


def test_companies_settings(seeded):
    companies = {c.slug: c for c in Company.objects.filter(slug__in=DEMO_SLUGS)}
    assert len(companies) == 3
    assert sum(not c.sms_enabled for c in companies.values()) == 1
    assert any(c.contracted and c.retention_days == 365 for c in companies.values())
    # The demo spans 45 days: a retention shorter than that would delete part of it.
    assert all(c.retention_days >= demo.DEMO_DAYS for c in companies.values())


def test_every_status_appears(seeded):
    with scopes_disabled():
        statuses = set(Message.objects.values_list("status", flat=True).distinct())
    assert statuses == set(Status.values)


def test_about_five_thousand_messages_over_45_days(seeded):
    now = timezone.now()
    with scopes_disabled():
        messages = Message.objects.all()
        assert 4500 <= messages.count() <= 5500
        oldest = messages.order_by("created_at").values_list("created_at", flat=True).first()
        assert oldest >= now - timedelta(days=demo.DEMO_DAYS + 1)
        scheduled = messages.filter(status=Status.SCHEDULED)
        assert scheduled.exists()
        assert not scheduled.filter(scheduled_for__lte=now).exists()


def test_stored_status_is_what_the_events_derive(seeded):
    with scopes_disabled():
        facts = defaultdict(list)
        keys = defaultdict(set)
        for row in StatusEvent.objects.values(
            "message_id", "dedupe_key", "status", "occurred_at", "error_code",
            "error_message", "reason",
        ):  # fmt: skip
            message_id = row.pop("message_id")
            assert row["dedupe_key"] not in keys[message_id]
            keys[message_id].add(row["dedupe_key"])
            facts[message_id].append(EventFact(**row))
        fields = ["status", "status_reason", "error_code", "error_message", *STAGE_FIELDS]
        mismatched = []
        for message in Message.objects.values("id", *fields):
            expected = derive(facts[message["id"]]).as_fields()
            if {name: message[name] for name in fields} != expected:
                mismatched.append(message["id"])
        assert facts and not mismatched
        assert not StatusEvent.objects.exclude(company_id=F("message__company_id")).exists()


def test_sources_and_provider_ids(seeded):
    with scopes_disabled():
        sources = Counter(StatusEvent.objects.values_list("source", "status"))
        assert sources[("system", Status.QUEUED)] and sources[("system", Status.SENDING)]
        assert all(source in ("system", "simulator") for source, _ in sources)
        reached = Message.objects.filter(
            status__in=[Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.OPENED]
        )
        assert not reached.filter(provider_message_id="").exists()
        assert not reached.exclude(provider="simulator").exists()
        never = Message.objects.filter(status__in=NEVER_SENT)
        assert not never.exclude(provider_message_id="").exists()


def test_failures_read_like_real_ones(seeded):
    with scopes_disabled():
        codes = set(Message.objects.values_list("error_code", flat=True))
        assert {"30003", "21211", "21610", "550 5.1.1"} <= codes
        # Soft bounces are timeline events that do not move the status.
        assert StatusEvent.objects.filter(status="", event="deferred").exists()
        # The multi-segment SMS: delivered overall, its failed segment's error kept.
        assert Message.objects.filter(
            channel="sms", status=Status.DELIVERED, error_code="30003", segments__gte=2
        ).exists()


def test_sms_segments_and_credits(seeded):
    with scopes_disabled():
        sms = Message.objects.filter(channel="sms")
        assert not sms.filter(segments=0).exists()
        assert set(sms.values_list("encoding", flat=True)) == {"GSM-7", "UCS-2"}
        assert not sms.filter(status__in=NEVER_SENT).exclude(credits=0).exists()
        charged = sms.exclude(credits=0)
        assert charged.exists() and not charged.exclude(credits=F("segments")).exists()
        disabled = Company.objects.get(sms_enabled=False, slug__in=DEMO_SLUGS)
        assert set(sms.filter(company=disabled).values_list("status", flat=True)) == {
            Status.CHANNEL_DISABLED
        }
        assert sms.filter(status=Status.INSUFFICIENT_CREDITS).exists()


def test_ledger_sums_to_the_balance(seeded):
    with scopes_disabled():
        for company in Company.objects.filter(slug__in=DEMO_SLUGS):
            entries = CreditLedgerEntry.objects.filter(company=company).order_by("created_at", "id")
            total = entries.aggregate(total=Sum("amount"))["total"] or 0
            assert total == company.sms_credit_balance >= 0
            running = 0
            for entry in entries:
                running += entry.amount
                assert entry.balance_after == running
            charges = entries.filter(kind=CreditLedgerEntry.Kind.CHARGE)
            assert not charges.exclude(amount=-F("message__credits")).exists()
            charged = Message.objects.filter(company=company, channel="sms").exclude(credits=0)
            assert charges.count() == charged.count()


def test_batches_in_every_state_with_true_counters(seeded):
    with scopes_disabled():
        batches = list(Batch.objects.filter(company__slug__in=DEMO_SLUGS))
        assert {b.state for b in batches} == set(Batch.State.values)
        assert any(b.progress == "13/18" for b in batches)
        opened = {Status.OPENED, Status.CLICKED, Status.COMPLAINED}
        unsent = {Status.QUEUED, Status.SCHEDULED, Status.SENDING} | NEVER_SENT
        for batch in batches:
            statuses = list(Message.objects.filter(batch=batch).values_list("status", flat=True))
            assert batch.total_count == len(statuses)
            assert batch.sent_count == sum(s not in unsent for s in statuses)
            assert batch.delivered_count == sum(s in DELIVERED_GROUP for s in statuses)
            assert batch.opened_count == sum(s in opened for s in statuses)
            assert batch.failed_count == sum(s in FAILED_GROUP for s in statuses)
            assert batch.canceled_count == statuses.count(Status.CANCELED)
        stopped = [b for b in batches if b.state == Batch.State.STOPPED]
        assert stopped and all(b.canceled_count and b.stopped_at and b.stopped_by for b in stopped)
        restarts = [b for b in batches if b.restarted_from_id]
        assert restarts and all(b.restarted_from.failed_count for b in restarts)


def test_contacts_templates_and_suppressions(seeded):
    with scopes_disabled():
        for company in Company.objects.filter(slug__in=DEMO_SLUGS):
            contacts = Contact.objects.filter(company=company)
            assert contacts.count() == demo.CONTACTS_PER_COMPANY
            suppressed = set(
                Suppression.objects.filter(company=company).values_list("channel", "address")
            )
            for contact in contacts.filter(email_bounced=True):
                assert ("email", contact.email) in suppressed
            for contact in contacts.filter(sms_opted_out=True):
                assert ("sms", contact.phone) in suppressed
            channels = set(
                MessageTemplate.objects.filter(company=company).values_list("channel", flat=True)
            )
            assert channels == {"sms", "email"}
        assert Contact.objects.filter(email_bounced=True).exists()
        assert Contact.objects.filter(sms_opted_out=True).exists()
        assert MessageTemplateVersion.objects.filter(number=2).exists()
        templated = Message.objects.exclude(template=None)
        assert not templated.filter(body_text__contains="{{").exists()
        assert not templated.filter(template_version=None).exists()


def test_the_daily_rollups_count_the_demo_log(seeded):
    from msglog.models import DailyRollup

    with scopes_disabled():
        in_rollups = DailyRollup.objects.aggregate(n=Sum("messages"))["n"]
        by_status = dict(
            DailyRollup.objects.values_list("status").annotate(n=Sum("messages")).order_by()
        )
        logged = Counter(Message.objects.values_list("status", flat=True))
    assert in_rollups == sum(logged.values())
    assert {s: n for s, n in by_status.items() if n} == dict(logged)


def test_demo_traffic_sends_a_few_messages_through_the_send_service(seeded):
    import random

    with scopes_disabled():
        before = Message.objects.count()
        sent = demo.send_demo_traffic(random.Random(7))
        new = list(Message.objects.order_by("-id")[:sent])
        assert Message.objects.count() == before + sent
    assert 1 <= sent <= 3 and len(new) == sent
    assert all(m.metadata.get("demo") for m in new)
    assert all(m.status in {"queued", *NEVER_SENT} for m in new)
