"""Fast synthetic messages with their status events, for benchmarks (``manage.py seed_bulk``).

How it stays honest:

* A message's whole story comes from a *profile*: a company, a template, a scenario (a
  timeline of events: queued, sending, sent, delivered, opened, a bounce, ...) and one
  draw of the delays between those events. A profile's status, reason, error and stage
  timestamps are computed once by :func:`msglog.rules.statuses.derive` from the profile's own
  events; messages only add ids, recipient and creation time, and derive() commutes
  with shifting all events by the same time. So every message says what its events say.
* Messages created so recently that part of their story is still in the future keep
  only the events received by now, derived again (they are the ones in flight).
* Daily rollups (:mod:`msglog.services.rollups`) and the bulk batches' counters are brought up to
  date with what was added.

How it is fast on PostgreSQL:

* Each profile is compiled once into functions that pack a message's binary COPY row,
  and all of its event rows, with one ``struct.pack`` call each. Ids are reserved up
  front so that events can name their message.
* One thread generates; ``workers`` threads each COPY one contiguous slice of the ids
  (and so of the time range: they insert into different parts of every index), one
  transaction per chunk holding a chunk's messages and their events, with
  ``synchronous_commit`` off and, for a superuser, without the per-row foreign-key
  triggers (every reference is valid by construction, as with pg_restore).
* No index is dropped. GIN pending lists are merged and the tables analyzed at the end.

On SQLite (embedded mode, small N) the same profiles go through ``bulk_create``.
"""

from __future__ import annotations

import base64
import bisect
import json
import os
import queue
import random
import struct
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import CodeType, FunctionType
from typing import ClassVar, TextIO

from django.db import connection, connections, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from django_scopes import scopes_disabled

from companies.models import Company, Contact, CreditLedgerEntry
from msglog.models import Batch, Message, StatusEvent
from msglog.rules.kinds import Category, Channel, MessageType
from msglog.rules.statuses import DELIVERED_GROUP, FAILED_GROUP, EventFact, Status, derive
from msglog.services import rollups
from templates_app.models import MessageTemplate

# Times are integers: microseconds since 2000-01-01 UTC, PostgreSQL's own timestamp form.
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MS = 1_000
SECOND = 1_000_000
HOUR = 3_600 * SECOND
DAY = 24 * HOUR

WINDOW_DAYS = 60
EMAIL_SHARE = 0.6
BATCH_SHARE = 0.06  # of all messages, spread over each company's bulk batches
POOL_BITS = 13  # 8,192 recipients per company and channel...
POOL_SIZE = 1 << POOL_BITS
CONTACTS_PER_COMPANY = 2_048  # ...of whom the first 2,048 are contacts
VARIANTS = 4  # delay draws per (template, scenario); 2 for rare scenarios
PROVIDER = "simulator"
PMID_PREFIX = "sim-"
PMID_HEX = 24  # provider message ids: "sim-" and 24 hex digits
STARTING_CREDITS = 10_000_000


def to_datetime(t: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=t)


def from_datetime(value: datetime) -> int:
    delta = value - PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds


# ----------------------------------------------------------------------------------------
# Scenarios: the timelines messages go through, and how often (percent of a channel)
# ----------------------------------------------------------------------------------------

SYSTEM = StatusEvent.Source.SYSTEM
SIM = StatusEvent.Source.SIMULATOR
USER = StatusEvent.Source.USER
PROVIDER_LAG = (200, 5_000)  # between a provider's event and its webhook, milliseconds
TRACKING_LAG = (1_000, 30_000)


@dataclass(frozen=True)
class Step:
    """One event of a scenario, `delay` (a range, milliseconds) after the previous one."""

    status: str  # a Status value, or "" for a report that does not move the status
    delay: tuple[int, int] = (0, 0)
    source: str = SYSTEM
    event: str = ""  # the reporter's own word; the status when blank
    lag: tuple[int, int] = (0, 0)  # from occurring to being received, milliseconds
    error_code: str = ""
    error_message: str = ""
    reason: str = ""
    payload: tuple[tuple[str, str], ...] = ()  # extra items of a provider's payload

    @property
    def word(self) -> str:
        return self.event or self.status

    @property
    def from_provider(self) -> bool:
        return self.source not in (SYSTEM, USER)


def report(status: str, delay: tuple[int, int], event: str = "", **kw) -> Step:
    """A provider's report (webhook), received a little after it happened."""
    kw.setdefault("lag", PROVIDER_LAG)
    return Step(status, delay, SIM, event, **kw)


def refused(status: str, reason: str, error_code: str = "") -> Step:
    """A never-sent outcome decided by us right after queueing."""
    return Step(status, (10, 500), reason=reason, error_code=error_code)


@dataclass(frozen=True)
class Scenario:
    name: str
    weight: float
    steps: tuple[Step, ...]
    scheduled: bool = False  # steps[0] is "scheduled"; scheduled_for is steps[1]'s time


# fmt: off
QUEUED = Step(Status.QUEUED)
SENDING = Step(Status.SENDING, (50, 3_000))
RETRY = Step(Status.SENDING, (60_000, 300_000))
SENT = report(Status.SENT, (100, 1_500))
EMAIL_DELIVERED = report(Status.DELIVERED, (500, 10_000))
SMS_DELIVERED = report(Status.DELIVERED, (2_000, 45_000))
OPENED = report(Status.OPENED, (60_000, 8 * 3_600_000), "open", lag=TRACKING_LAG)
CLICKED = report(Status.CLICKED, (5_000, 600_000), "click", lag=TRACKING_LAG)
DEFERRED = report(
    "", (1_000, 20_000), "deferred", error_code="421",
    error_message="4.2.1 Mailbox busy, try again later",
)
BOUNCED = report(
    Status.BOUNCED, (1_000, 60_000), "bounce", error_code="550", reason="Hard bounce",
    error_message="5.1.1 The email account that you tried to reach does not exist",
    payload=(("smtp_code", "550"),),
)
LATE_BOUNCE = report(
    Status.BOUNCED, (60_000, 1_800_000), "bounce", error_code="552", reason="Hard bounce",
    error_message="5.2.2 Mailbox full", payload=(("smtp_code", "552"),),
)
COMPLAINED = report(
    Status.COMPLAINED, (60_000, 7_200_000), "spamreport", lag=TRACKING_LAG,
    reason="The recipient marked it as spam",
)
EMAIL_FAILED = Step(
    Status.FAILED, (1_000, 30_000), error_code="sim_503",
    error_message="Provider unavailable: retries exhausted",
)
UNDELIVERED = report(
    Status.UNDELIVERED, (3_000, 60_000), "undelivered", error_code="30003",
    error_message="Unreachable destination handset",
)
SEGMENT_UNDELIVERED = report(
    Status.UNDELIVERED, (3_000, 20_000), "undelivered", error_code="30005",
    error_message="Unknown destination handset (segment 1 of 2)",
)
SMS_FAILED = report(
    Status.FAILED, (500, 15_000), "failed", error_code="30008", error_message="Unknown error"
)
SCHEDULED = (Step(Status.SCHEDULED), Step(Status.QUEUED, (10 * 60_000, 24 * 3_600_000)))
SEND = (QUEUED, SENDING, SENT)

EMAIL_SCENARIOS = (
    Scenario("delivered", 30, (*SEND, EMAIL_DELIVERED)),
    Scenario("opened", 38, (*SEND, EMAIL_DELIVERED, OPENED)),
    Scenario("clicked", 12, (*SEND, EMAIL_DELIVERED, OPENED, CLICKED)),
    Scenario("sent_no_report", 3, SEND),
    Scenario("deferred_then_delivered", 2, (QUEUED, SENDING, DEFERRED, RETRY, SENT,
                                            EMAIL_DELIVERED)),
    Scenario("bounced", 2.5, (*SEND, BOUNCED)),
    Scenario("delivered_then_bounced", 1, (*SEND, EMAIL_DELIVERED, LATE_BOUNCE)),
    Scenario("complained", 0.3, (*SEND, EMAIL_DELIVERED, OPENED, COMPLAINED)),
    Scenario("failed", 1.2, (QUEUED, SENDING, EMAIL_FAILED)),
    Scenario("invalid_recipient", 0.5, (
        QUEUED, refused(Status.INVALID_RECIPIENT, "Not a valid email address"))),
    Scenario("suppressed", 0.8, (
        QUEUED, refused(Status.SUPPRESSED, "The address is suppressed: hard bounce"))),
    Scenario("channel_disabled", 0.15, (
        QUEUED, refused(Status.CHANNEL_DISABLED, "Email is disabled for this company"))),
    Scenario("stuck_queued", 0.2, (QUEUED,)),
    Scenario("stuck_sending", 0.3, (QUEUED, SENDING)),
    Scenario("scheduled", 2, (*SCHEDULED, SENDING, SENT, EMAIL_DELIVERED, OPENED), True),
)

SMS_SCENARIOS = (
    Scenario("delivered", 80, (*SEND, SMS_DELIVERED)),
    Scenario("sent_no_report", 4, SEND),
    Scenario("undelivered", 3, (*SEND, UNDELIVERED)),
    Scenario("segment_failed_then_delivered", 1, (*SEND, SEGMENT_UNDELIVERED, SMS_DELIVERED)),
    Scenario("failed", 1.2, (QUEUED, SENDING, SMS_FAILED)),
    Scenario("invalid_recipient", 0.8, (
        QUEUED, refused(Status.INVALID_RECIPIENT, "Not a valid phone number", "21211"))),
    Scenario("insufficient_credits", 0.6, (
        QUEUED, refused(Status.INSUFFICIENT_CREDITS, "The company has too few SMS credits"))),
    Scenario("suppressed", 0.8, (QUEUED, refused(Status.SUPPRESSED, "Recipient replied STOP"))),
    Scenario("channel_disabled", 0.15, (
        QUEUED, refused(Status.CHANNEL_DISABLED, "SMS is disabled for this company"))),
    Scenario("stuck_queued", 0.2, (QUEUED,)),
    Scenario("stuck_sending", 0.3, (QUEUED, SENDING)),
    Scenario("scheduled", 2, (*SCHEDULED, SENDING, SENT, SMS_DELIVERED), True),
)

SCENARIOS = {Channel.EMAIL: EMAIL_SCENARIOS, Channel.SMS: SMS_SCENARIOS}
# Only in a stopped batch: the ones still queued when a user stopped it.
CANCELED = Scenario(
    "canceled", 0, (QUEUED, Step(Status.CANCELED, (60_000, 7_200_000), USER,
                                 reason="The batch was stopped by a user")),
)
# fmt: on


# ----------------------------------------------------------------------------------------
# Companies, templates, contacts and batches (ORM, idempotent)
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    channel: str
    category: str
    message_type: str
    weight: float  # share among the channel's templates
    subject: str
    text: str


# fmt: off
E, S = Channel.EMAIL, Channel.SMS
TEMPLATES = (
    TemplateSpec("Appointment confirmation", E, Category.TRANSACTIONAL, MessageType.CONFIRMATION,
                 25, "Your appointment is confirmed",
                 "Hi there, your appointment with {company} is confirmed for Tuesday at 10:00. "
                 "Reply to this email if you need to change it."),
    TemplateSpec("Appointment reminder", E, Category.NOTIFICATION, MessageType.REMINDER, 25,
                 "Reminder: your appointment tomorrow",
                 "Hi there, a friendly reminder of your appointment with {company} tomorrow "
                 "at 10:00."),
    TemplateSpec("Invoice", E, Category.TRANSACTIONAL, MessageType.INVOICE, 10,
                 "Your invoice from {company}",
                 "Hi there, your invoice INV-2291 of $120.00 is attached. Thank you!"),
    TemplateSpec("Payment receipt", E, Category.TRANSACTIONAL, MessageType.PAYMENT_RECEIPT, 12,
                 "Payment received", "Hi there, we received your payment of $120.00. Thank you!"),
    TemplateSpec("Thank you", E, Category.SERVICE, MessageType.THANK_YOU, 10,
                 "Thank you for visiting {company}",
                 "Hi there, thank you for your visit today. We hope to see you again soon."),
    TemplateSpec("Monthly newsletter", E, Category.MARKETING, MessageType.MARKETING, 13,
                 "What's new at {company} this month",
                 "Hi there, this month we have new classes, longer opening hours and a spring "
                 "offer for members."),
    TemplateSpec("Birthday greeting", E, Category.MARKETING, MessageType.BIRTHDAY, 5,
                 "Happy birthday from {company}!",
                 "Happy birthday! Enjoy 20% off your next visit this month."),
    TemplateSpec("SMS reminder", S, Category.NOTIFICATION, MessageType.REMINDER, 40, "",
                 "{company}: reminder of your appointment tomorrow at 10:00. Reply C to confirm "
                 "or R to reschedule."),
    TemplateSpec("SMS confirmation request", S, Category.SERVICE,
                 MessageType.CONFIRMATION_REQUEST, 25, "",
                 "{company}: please confirm your appointment on Tue at 10:00 by replying YES."),
    TemplateSpec("SMS cancellation", S, Category.NOTIFICATION, MessageType.CANCELLATION, 8, "",
                 "{company}: your appointment on Tue at 10:00 has been cancelled. Call us to "
                 "book a new time."),
    TemplateSpec("SMS reschedule", S, Category.NOTIFICATION, MessageType.RESCHEDULE, 8, "",
                 "{company}: your appointment moved to Wed at 14:30. Reply R to pick another "
                 "time."),
    TemplateSpec("SMS waitlist", S, Category.NOTIFICATION, MessageType.WAITLIST, 7, "",
                 "{company}: a spot opened up on the waitlist for Friday 09:00 \U0001f389 Reply "
                 "YES within 30 minutes to take it."),
    TemplateSpec("SMS promotion", S, Category.MARKETING, MessageType.MARKETING, 12, "",
                 "{company}: spring offer! Book any treatment this week and get 20% off. Show "
                 "this message at the front desk when you arrive for your visit. Reply STOP to "
                 "opt out."),
)

BATCHES = (  # name, template, state
    ("Spring promotion", "SMS promotion", Batch.State.FINISHED),
    ("Monthly newsletter", "Monthly newsletter", Batch.State.STOPPED),
    ("Reminder run", "Appointment reminder", Batch.State.RUNNING),
)

FIRST_NAMES = ("Ana", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon",
               "Kira", "Liam", "Maya", "Noah", "Olga", "Pablo", "Quinn", "Rosa", "Sam", "Tara")
LAST_NAMES = ("Smith", "Garcia", "Chen", "Novak", "Okafor", "Rossi", "Silva", "Kim", "Müller",
              "Dubois", "Haddad", "Ivanova", "Jensen", "Khan", "Larsen", "Moreau")
# fmt: on


def recipient(company_index: int, channel: str, j: int) -> tuple[str, str]:
    """The j-th synthetic recipient of the company with that index: (address, name)."""
    name = f"{FIRST_NAMES[j % len(FIRST_NAMES)]} {LAST_NAMES[(j // 7) % len(LAST_NAMES)]}"
    if channel == Channel.EMAIL:
        return f"user{company_index * 100_000 + j}@example.com", name
    return f"+1555{company_index:02d}{j:05d}", name


GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def sms_parts(text: str) -> tuple[str, int]:
    """(encoding, segments) of an SMS body."""
    if set(text) <= GSM7:
        septets = len(text) + sum(ch in "^{}\\[~]|€" for ch in text)
        return "GSM-7", 1 if septets <= 160 else -(-septets // 153)
    units = len(text.encode("utf-16-le")) // 2
    return "UCS-2", 1 if units <= 70 else -(-units // 67)


@dataclass
class TemplateRef:
    spec: TemplateSpec
    id: int
    version_id: int
    subject: str
    text: str
    html: str


@dataclass
class CompanyRef:
    index: int  # as in its slug, bulk-<index>
    id: int
    templates: dict[str, TemplateRef]
    contact_ids: list[int | None]  # by recipient number
    batches: list[tuple[int, str, str]]  # (id, template name, state)

    @property
    def weight(self) -> float:
        return 1 / self.index**0.5  # a few bigger tenants, then a tail of smaller ones


def ensure_companies(count: int) -> list[CompanyRef]:
    """The companies bulk-1..bulk-K with their templates, contacts and batches."""
    refs = []
    with scopes_disabled():
        for index in range(1, count + 1):
            with transaction.atomic():
                refs.append(_ensure_company(index))
    return refs


def _ensure_company(index: int) -> CompanyRef:
    company, created = Company.objects.get_or_create(
        slug=f"bulk-{index}",
        defaults={
            "name": f"Bulk Co {index}",
            "sms_sender": f"BULKCO{index}"[:11],
            "email_sender": f"hello@bulk-{index}.example.com",
            "tracking_enabled": True,
        },
    )
    if created:
        CreditLedgerEntry.objects.create(
            company=company,
            kind=CreditLedgerEntry.Kind.TOP_UP,
            amount=STARTING_CREDITS,
            balance_after=STARTING_CREDITS,
            note="Bulk seed credits",
        )
        Company.objects.filter(pk=company.pk).update(sms_credit_balance=STARTING_CREDITS)

    templates = {}
    for spec in TEMPLATES:
        text = spec.text.format(company=company.name)
        subject = spec.subject.format(company=company.name)
        html = ""
        if spec.channel == Channel.EMAIL:
            link = f'<a href="https://bulk-{index}.example.com/book">Manage your booking</a>'
            html = f"<html><body><h1>{subject}</h1><p>{text}</p><p>{link}</p></body></html>"
        template, _ = MessageTemplate.objects.get_or_create(
            company=company,
            name=spec.name,
            defaults={
                "channel": spec.channel,
                "category": spec.category,
                "message_type": spec.message_type,
                "subject": subject,
                "text": text,
                "html": html,
            },
        )
        version = template.publish()
        templates[spec.name] = TemplateRef(
            spec, template.pk, version.pk, version.subject, version.text, version.html
        )

    contacts = Contact.objects.filter(company=company, external_ref__startswith="bulk-")
    existing = dict(contacts.values_list("external_ref", "id"))
    missing = []
    for j in range(CONTACTS_PER_COMPANY):
        if f"bulk-{j}" not in existing:
            email, name = recipient(index, Channel.EMAIL, j)
            phone, _ = recipient(index, Channel.SMS, j)
            missing.append(
                Contact(
                    company=company, name=name, email=email, phone=phone, external_ref=f"bulk-{j}"
                )
            )
    if missing:
        Contact.objects.bulk_create(missing, batch_size=1_000)
        existing = dict(contacts.values_list("external_ref", "id"))
    contact_ids = [existing.get(f"bulk-{j}") for j in range(POOL_SIZE)]

    batches = []
    for name, template_name, state in BATCHES:
        template = templates[template_name]
        batch, _ = Batch.objects.get_or_create(
            company=company,
            name=name,
            defaults={
                "channel": template.spec.channel,
                "template_id": template.id,
                "template_version_id": template.version_id,
                "state": state,
            },
        )
        batches.append((batch.pk, template_name, batch.state))
    return CompanyRef(index, company.pk, templates, contact_ids, batches)


# ----------------------------------------------------------------------------------------
# Binary COPY rows
# ----------------------------------------------------------------------------------------

NULL = b"\xff\xff\xff\xff"
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
COPY_TRAILER = b"\xff\xff"
_int4 = struct.Struct(">i").pack
_INT_CODES = {"int8": ">q", "int4": ">i", "int2": ">h"}


def enc(kind: str, value) -> bytes:
    """One binary COPY field: its length, then the value in its type's binary form."""
    if value is None:
        return NULL
    if kind == "text":
        data = str(value).encode()
    elif kind == "jsonb":
        data = b"\x01" + json.dumps(value, separators=(",", ":")).encode()
    else:
        data = struct.pack(_INT_CODES[kind], value)
    return _int4(len(data)) + data


class RowPacker:
    """Compiles a row layout (constant bytes and variable fields) into one pack() call.

    ``const`` takes encoded bytes; ``var`` takes a struct code and a Python expression
    over the function's parameters and over names made by ``name`` (constants such as
    time offsets). Adjacent constants are merged. Profiles of the same shape share the
    compiled code; only their constants differ.
    """

    _code: ClassVar[dict[str, CodeType]] = {}

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.args: list[str] = []
        self.names: dict[str, object] = {}
        self.pending = bytearray()

    def name(self, value: object) -> str:
        key = f"k{len(self.names)}"
        self.names[key] = value
        return key

    def const(self, data: bytes) -> None:
        self.pending += data

    def var(self, code: str, expr: str) -> None:
        self._flush()
        self.codes.append(code)
        self.args.append(expr)

    def _flush(self) -> None:
        if self.pending:
            self.codes.append(f"{len(self.pending)}s")
            self.args.append(self.name(bytes(self.pending)))
            self.pending = bytearray()

    def compile(self, params: str) -> Callable[..., bytes]:
        self._flush()
        # The constants are default arguments: fast locals, and the code is the same
        # for every profile of this shape (it is compiled once).
        names = ", ".join(["pack", *self.names])
        source = f"def row({params}, {names}):\n    return pack({', '.join(self.args)})\n"
        if (code := self._code.get(source)) is None:
            namespace: dict = {}
            exec(source, namespace)  # noqa: S102 -- code generated here from our own layouts
            code = self._code[source] = namespace["row"].__code__
        pack = struct.Struct(">" + "".join(self.codes)).pack
        return FunctionType(code, {}, "row", (pack, *self.names.values()))


# Column order of the COPYs: the varying columns first; a message's recipient (one
# precomputed piece per recipient) last.
# fmt: off
MESSAGE_TIMES = ("updated_at", "sent_at", "delivered_at", "opened_at", "clicked_at",
                 "failed_at", "scheduled_for")
MESSAGE_CONSTANTS = (
    ("company_id", "int8"), ("channel", "text"), ("category", "text"), ("message_type", "text"),
    ("template_id", "int8"), ("template_version_id", "int8"), ("subject", "text"),
    ("body_text", "text"), ("body_html", "text"), ("provider", "text"), ("status", "text"),
    ("status_reason", "text"), ("error_code", "text"), ("error_message", "text"),
    ("segments", "int2"), ("encoding", "text"), ("credits", "int4"), ("batch_id", "int8"),
    ("idempotency_key", "text"), ("attempts", "int2"), ("metadata", "jsonb"),
)
MESSAGE_COLUMNS = ("id", "public_id", "provider_message_id", "created_at", *MESSAGE_TIMES,
                   *(name for name, _ in MESSAGE_CONSTANTS), "to_address", "to_name",
                   "contact_id")
EVENT_CONSTANTS = (
    ("company_id", "int8"), ("status", "text"), ("event", "text"), ("source", "text"),
    ("error_code", "text"), ("error_message", "text"), ("reason", "text"),
    ("provider_event_id", "text"),
)
EVENT_COLUMNS = ("id", "message_id", "occurred_at", "received_at", "dedupe_key", "raw_payload",
                 *(name for name, _ in EVENT_CONSTANTS))
# fmt: on


def _copy_sql(model, columns: Sequence[str]) -> str:
    return f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN (FORMAT binary)"


MESSAGE_COPY = _copy_sql(Message, MESSAGE_COLUMNS)
EVENT_COPY = _copy_sql(StatusEvent, EVENT_COLUMNS)


# ----------------------------------------------------------------------------------------
# Profiles
# ----------------------------------------------------------------------------------------


@dataclass
class EventSpec:
    step: Step
    occurred: int  # after the message's creation, microseconds
    received: int

    def payload(self, pmid: str) -> dict:
        if not self.step.from_provider:
            return {}
        return {"event": str(self.step.word), "message_id": pmid, **dict(self.step.payload)}

    def fields(self) -> dict:
        step = self.step
        return {
            "status": str(step.status),
            "event": str(step.word),
            "source": str(step.source),
            "error_code": step.error_code,
            "error_message": step.error_message,
            "reason": step.reason,
            "provider_event_id": "",
        }


def draw_events(steps: Sequence[Step], rng: random.Random) -> list[EventSpec]:
    events, at = [], 0
    for step in steps:
        if step.delay[1]:
            at += rng.randint(*step.delay) * MS + rng.randrange(MS)
        events.append(EventSpec(step, at, at + rng.randint(*step.lag) * MS))
    return events


@dataclass(eq=False)
class Profile:
    """Everything about a message except its ids, recipient and creation time."""

    company: CompanyRef
    template: TemplateRef
    batch_id: int | None
    events: list[EventSpec]
    scheduled_offset: int | None
    pool: Sequence  # recipients: (address, name, contact id), or their COPY bytes
    weight: float = 0.0
    # Derived from the events:
    fields: dict = field(default_factory=dict)  # the message's constant columns
    times: dict[str, int | None] = field(default_factory=dict)  # MESSAGE_TIMES -> offset
    has_pmid: bool = False
    last_received: int = 0
    nev: int = 0  # events
    keys: int = 0  # hex digits of their dedupe keys
    settled: int = 0  # messages created after this time are still in flight
    rows: tuple | None = None  # compiled (message row, event rows) functions
    _as_of: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        facts = [
            EventFact(
                dedupe_key=f"{i:04d}",
                status=e.step.status,
                occurred_at=to_datetime(e.occurred),
                error_code=e.step.error_code,
                error_message=e.step.error_message,
                reason=e.step.reason,
            )
            for i, e in enumerate(self.events)
        ]
        derived = derive(facts).as_fields()
        spec = self.template.spec
        attempts = sum(e.step.status == Status.SENDING for e in self.events)
        encoding, segments = sms_parts(self.template.text) if spec.channel == S else ("", 0)
        self.has_pmid = any(e.step.from_provider for e in self.events)
        self.fields = {
            "company_id": self.company.id,
            "channel": str(spec.channel),
            "category": str(spec.category),
            "message_type": str(spec.message_type),
            "template_id": self.template.id,
            "template_version_id": self.template.version_id,
            "subject": self.template.subject,
            "body_text": self.template.text,
            "body_html": self.template.html,
            "provider": PROVIDER,
            "status": str(derived["status"]),
            "status_reason": derived["status_reason"],
            "error_code": derived["error_code"],
            "error_message": derived["error_message"],
            "segments": segments,
            "encoding": encoding,
            "credits": segments if attempts else 0,
            "batch_id": self.batch_id,
            "idempotency_key": "",
            "attempts": attempts,
            "metadata": {},
        }
        self.last_received = max(e.received for e in self.events)
        self.nev, self.keys = len(self.events), 64 * len(self.events)
        stages = ("sent_at", "delivered_at", "opened_at", "clicked_at", "failed_at")
        self.times = {
            "updated_at": self.last_received,
            **{k: None if derived[k] is None else from_datetime(derived[k]) for k in stages},
            "scheduled_for": self.scheduled_offset,
        }

    def as_of(self, age: int) -> Profile:
        """This profile `age` after creation: only the events received by then."""
        kept = tuple(i for i, e in enumerate(self.events) if e.received <= age)
        if len(kept) == len(self.events):
            return self
        if (profile := self._as_of.get(kept)) is None:
            events = [self.events[i] for i in kept]
            profile = Profile(
                self.company, self.template, self.batch_id, events, self.scheduled_offset, self.pool
            )
            self._as_of[kept] = profile
        return profile

    # -- binary COPY ----------------------------------------------------------------------

    def compile(self) -> tuple[Callable[..., bytes], Callable[..., bytes]]:
        """Functions packing the message's row and its events' rows; compiled once."""
        if self.rows is None:
            self.rows = (self._message_row(), self._event_rows())
        return self.rows

    def _message_row(self) -> Callable[..., bytes]:
        """row(mid, pub, pm, t): pub the public id, pm the provider id's hex, t created."""
        p = RowPacker()
        p.const(struct.pack(">h", len(MESSAGE_COLUMNS)) + _int4(8))
        p.var("q", "mid")
        p.const(_int4(16))
        p.var("16s", "pub")
        if self.has_pmid:
            p.const(_int4(len(PMID_PREFIX) + PMID_HEX) + PMID_PREFIX.encode())
            p.var(f"{PMID_HEX}s", "pm")
        else:
            p.const(enc("text", ""))
        p.const(_int4(8))
        p.var("q", "t")
        for name in MESSAGE_TIMES:
            offset = self.times[name]
            if offset is None:
                p.const(NULL)
            else:
                p.const(_int4(8))
                p.var("q", f"t + {p.name(offset)}")
        for name, kind in MESSAGE_CONSTANTS:
            p.const(enc(kind, self.fields[name]))
        return p.compile("mid, pub, pm, t")

    def _event_rows(self) -> Callable[..., bytes]:
        """rows(eid, mid, t, keys, j, pm): keys[j:] holds 64 hex digits per event."""
        p = RowPacker()
        probe = PMID_PREFIX + "0" * PMID_HEX
        for k, event in enumerate(self.events):
            p.const(struct.pack(">h", len(EVENT_COLUMNS)) + _int4(8))
            p.var("q", f"eid + {k}")
            p.const(_int4(8))
            p.var("q", "mid")
            p.const(_int4(8))
            p.var("q", f"t + {p.name(event.occurred)}")
            p.const(_int4(8))
            p.var("q", f"t + {p.name(event.received)}")
            p.const(_int4(64))
            p.var("64s", f"keys[j + {64 * k}:j + {64 * (k + 1)}]")
            payload = enc("jsonb", event.payload(probe))
            if probe.encode() in payload:  # the payload names the provider's message id
                before, after = payload.split(probe.encode())
                p.const(before + PMID_PREFIX.encode())
                p.var(f"{PMID_HEX}s", "pm")
                p.const(after)
            else:
                p.const(payload)
            values = {"company_id": self.company.id, **event.fields()}
            for name, kind in EVENT_CONSTANTS:
                p.const(enc(kind, values[name]))
        return p.compile("eid, mid, t, keys, j, pm")

    # -- ORM (SQLite) ---------------------------------------------------------------------

    def objects(self, mid: int, eid: int, t: int, who: tuple) -> tuple[Message, list]:
        pmid = f"{PMID_PREFIX}{os.urandom(PMID_HEX // 2).hex()}" if self.has_pmid else ""
        message = Message(
            id=mid,
            public_id=base64.urlsafe_b64encode(os.urandom(12)).decode(),
            provider_message_id=pmid,
            created_at=to_datetime(t),
            to_address=who[0],
            to_name=who[1],
            contact_id=who[2],
            **self.fields,
            **{k: None if off is None else to_datetime(t + off) for k, off in self.times.items()},
        )
        events = [
            StatusEvent(
                id=eid + k,
                message_id=mid,
                company_id=self.company.id,
                occurred_at=to_datetime(t + e.occurred),
                received_at=to_datetime(t + e.received),
                dedupe_key=os.urandom(32).hex(),
                raw_payload=e.payload(pmid),
                **e.fields(),
            )
            for k, e in enumerate(self.events)
        ]
        return message, events


def recipient_pools(company: CompanyRef, binary: bool) -> dict[str, tuple[list, list]]:
    """Per channel: (the company's recipients, an invalid address repeated to the same size)."""
    pools = {}
    for channel in (Channel.EMAIL, Channel.SMS):
        people = [
            (*recipient(company.index, channel, j), company.contact_ids[j])
            for j in range(POOL_SIZE)
        ]
        bad = ("not-an-email@", "Unknown", None) if channel == E else ("+1555", "Unknown", None)
        if binary:
            people = [enc("text", a) + enc("text", n) + enc("int8", c) for a, n, c in people]
            bad = enc("text", bad[0]) + enc("text", bad[1]) + NULL
        pools[channel] = (people, [bad] * POOL_SIZE)
    return pools


def build_profiles(companies: list[CompanyRef], rng: random.Random, binary: bool) -> list:
    """The pool of message profiles, each with its share of the messages in `weight`."""
    profiles = []
    channel_share = {E: EMAIL_SHARE, S: 1 - EMAIL_SHARE}
    template_total = {ch: sum(t.weight for t in TEMPLATES if t.channel == ch) for ch in (E, S)}
    for company in companies:
        pools = recipient_pools(company, binary)

        def add(
            template: TemplateRef,
            scenarios: Sequence[Scenario],
            share: float,
            batch_id: int | None = None,
            company=company,
            pools=pools,
        ) -> None:
            total = sum(s.weight for s in scenarios)
            people, invalid = pools[template.spec.channel]
            for scenario in scenarios:
                variants = VARIANTS if scenario.weight >= 2 else 2
                pool = invalid if scenario.name == "invalid_recipient" else people
                weight = share * scenario.weight / total / variants
                for _ in range(variants):
                    events = draw_events(scenario.steps, rng)
                    scheduled = events[1].occurred if scenario.scheduled else None
                    profiles.append(
                        Profile(company, template, batch_id, events, scheduled, pool, weight)
                    )

        for template in company.templates.values():
            ch = template.spec.channel
            share = company.weight * channel_share[ch] * template.spec.weight / template_total[ch]
            add(template, SCENARIOS[ch], (1 - BATCH_SHARE) * share)
        for batch_id, template_name, state in company.batches:
            template = company.templates[template_name]
            scenarios = [s for s in SCENARIOS[template.spec.channel] if not s.scheduled]
            if state == Batch.State.STOPPED:  # a third of it was canceled
                scenarios.append(replace(CANCELED, weight=sum(s.weight for s in scenarios) / 2))
            add(template, scenarios, company.weight * BATCH_SHARE / len(BATCHES), batch_id)
    return profiles


# ----------------------------------------------------------------------------------------
# Creation times: over the window, with a daily and weekly rhythm, in id order
# ----------------------------------------------------------------------------------------

HOURLY = (1, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 10, 9, 9, 9, 9, 9, 8, 7, 6, 5, 4, 3, 2)


class Timeline:
    """Creation times of messages 0..n-1: non-decreasing, the same for the same range."""

    def __init__(self, n: int, end: int, days: int, seed: int) -> None:
        self.seed = seed
        start = end - days * DAY
        self.hours: list[tuple[int, int]] = []
        weights = []
        for hour in range(start - start % HOUR, end, HOUR):
            when = to_datetime(hour)
            lo, hi = max(hour, start), min(hour + HOUR, end)
            self.hours.append((lo, hi))
            weekend = 0.5 if when.weekday() >= 5 else 1.0
            weights.append(HOURLY[when.hour] * weekend * (hi - lo) / HOUR)
        total, acc = sum(weights), 0.0
        self.bounds = [0]  # messages bounds[k]..bounds[k+1]-1 fall in hour k
        for weight in weights:
            acc += weight
            self.bounds.append(min(n, round(n * acc / total)))
        self.bounds[-1] = n

    def _hour(self, k: int) -> list[int]:
        lo, hi = self.hours[k]
        count = self.bounds[k + 1] - self.bounds[k]
        rng = random.Random(self.seed * 100_003 + k)
        return sorted(lo + int(rng.random() * (hi - lo)) for _ in range(count))

    def times(self, a: int, b: int) -> list[int]:
        out: list[int] = []
        k = bisect.bisect_right(self.bounds, a) - 1
        while len(out) < b - a:
            lo, hi = self.bounds[k], self.bounds[k + 1]
            if hi > lo:
                out.extend(self._hour(k)[max(a, lo) - lo : min(b, hi) - lo])
            k += 1
        return out


# ----------------------------------------------------------------------------------------
# Generation
# ----------------------------------------------------------------------------------------


@dataclass
class Plan:
    n: int
    profiles: list[Profile]
    picks: list[int]  # a profile (index) per message
    timeline: Timeline
    now: int
    first_message_id: int = 0
    first_event_id: int = 0
    # Messages per (profile, UTC day number), for the rollups.
    tally: dict[tuple[Profile, int], int] = field(default_factory=lambda: defaultdict(int))

    def events_of(self, a: int, b: int) -> int:
        """Events of messages a..b-1 (an upper bound: recent ones may have fewer yet)."""
        profiles = self.profiles
        return sum(profiles[i].nev for i in self.picks[a:b])

    def count(self, picks: Sequence[int], times: Sequence[int]) -> None:
        """Tally messages per profile and day; in_flight() moves the recent ones."""
        start = 0
        while start < len(times):
            day = times[start] // DAY
            end = bisect.bisect_left(times, (day + 1) * DAY, start)
            for pick, n in Counter(picks[start:end]).items():
                self.tally[self.profiles[pick], day] += n
            start = end

    def in_flight(self, p: Profile, t: int) -> Profile:
        """The profile of a message created at t, as far as its story has got by now."""
        q = p.as_of(self.now - t)
        if q is not p:
            self.tally[p, t // DAY] -= 1
            self.tally[q, t // DAY] += 1
        return q


def make_plan(n: int, companies: list[CompanyRef], seed: int, binary: bool) -> Plan:
    rng = random.Random(seed)
    profiles = build_profiles(companies, rng, binary)
    cum, acc = [], 0.0
    for profile in profiles:
        acc += profile.weight
        cum.append(acc)
    picks = rng.choices(range(len(profiles)), cum_weights=cum, k=n)
    now = from_datetime(timezone.now())
    for profile in profiles:
        profile.settled = now - profile.last_received  # created before: its story is complete
    return Plan(n, profiles, picks, Timeline(n, now, WINDOW_DAYS, seed), now)


def generate_chunk(plan: Plan, a: int, b: int, eid: int) -> tuple[bytes, bytes, int]:
    """Binary COPY data of messages a..b-1 and their events (ids from eid); next event id."""
    n = b - a
    profiles, picks = plan.profiles, plan.picks[a:b]
    times = plan.timeline.times(a, b)
    plan.count(picks, times)
    pubs = base64.urlsafe_b64encode(os.urandom(12 * n))  # = secrets.token_urlsafe(12) each
    pmids = os.urandom(PMID_HEX // 2 * n).hex().encode()
    keys = os.urandom(32 * sum(profiles[i].nev for i in picks)).hex().encode()
    who = memoryview(os.urandom(2 * n)).cast("H")
    mask = POOL_SIZE - 1
    mparts, eparts = [COPY_HEADER], [COPY_HEADER]
    madd, eadd = mparts.append, eparts.append
    mid, j, o16, o24 = plan.first_message_id + a, 0, 0, 0
    for pick, t, w in zip(picks, times, who, strict=True):
        p = profiles[pick]
        if t > p.settled:  # part of its story is still to come
            p = plan.in_flight(p, t)
        mrow, erows = p.rows or p.compile()
        pm = pmids[o24 : o24 + PMID_HEX]
        madd(mrow(mid, pubs[o16 : o16 + 16], pm, t))
        madd(p.pool[w & mask])
        eadd(erows(eid, mid, t, keys, j, pm))
        mid += 1
        eid += p.nev
        j += p.keys
        o16 += 16
        o24 += PMID_HEX
    mparts.append(COPY_TRAILER)
    eparts.append(COPY_TRAILER)
    return b"".join(mparts), b"".join(eparts), eid


# ----------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------


def reserve_ids(model, count: int) -> int:
    """Reserve `count` consecutive ids of `model`'s identity sequence; return the first.

    The table lock (readers pass, writers wait) keeps any insert from taking an id in
    the range between reading the sequence and moving it past the range.
    """
    table = model._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '60s'")
        cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        top_sql = f"SELECT coalesce(max(id), 0) FROM {table}"  # noqa: S608 -- a model's table
        cursor.execute(f"SELECT pg_get_serial_sequence(%s, 'id'), ({top_sql})", [table])
        sequence, top = cursor.fetchone()
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608
        last, called = cursor.fetchone()
        first = max(top, last if called else last - 1) + 1
        cursor.execute("SELECT setval(%s, %s, true)", [sequence, first + max(count, 1) - 1])
    return first


def is_superuser() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
    return bool(row and row[0])


class _Stop(Exception):
    pass


def copy_chunk(cursor, messages: bytes, events: bytes) -> None:
    with cursor.copy(MESSAGE_COPY) as copy:
        copy.write(messages)
    with cursor.copy(EVENT_COPY) as copy:
        copy.write(events)


def _copy_worker(jobs: queue.Queue, errors: list, fk_checks: bool) -> None:
    """COPY the chunks put on `jobs`, one transaction each, on this thread's connection."""
    conn = connections["default"]  # this thread's own connection
    try:
        conn.ensure_connection()
        raw = conn.connection
        while (job := jobs.get()) is not None:
            if errors:
                continue
            with transaction.atomic(), raw.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
                if not fk_checks:
                    cursor.execute("SET LOCAL session_replication_role = replica")
                copy_chunk(cursor, *job)
    except BaseException as exc:  # re-raised by the generating thread
        errors.append(exc)
        while jobs.get() is not None:
            pass
    finally:
        connections.close_all()


def load_postgres(plan: Plan, workers: int, chunk: int, fk_checks: bool, progress) -> dict:
    plan.first_message_id = reserve_ids(Message, plan.n)
    plan.first_event_id = reserve_ids(StatusEvent, plan.events_of(0, plan.n))
    if connection.in_atomic_block:
        # Inside the caller's transaction (a test, say): other connections could not see
        # its companies, so COPY on this connection, leaving its settings alone.
        eid = plan.first_event_id
        with connection.cursor() as cursor:
            for a in range(0, plan.n, chunk):
                messages, events, eid = generate_chunk(plan, a, min(plan.n, a + chunk), eid)
                copy_chunk(cursor.cursor, messages, events)
                progress(min(plan.n, a + chunk))
        return {"events": eid - plan.first_event_id, "workers": 1, "fk_checks": True}

    workers = max(1, min(workers, -(-plan.n // chunk)))
    fk_checks = fk_checks or not is_superuser()
    # Slice s: messages a..b-1, its events numbered from eid; each advances by chunks.
    slices, eid = [], plan.first_event_id
    for s in range(workers):
        a, b = plan.n * s // workers, plan.n * (s + 1) // workers
        slices.append([a, b, eid])
        eid += plan.events_of(a, b)
    jobs = [queue.Queue(maxsize=2) for _ in range(workers)]
    errors: list = []
    threads = [
        threading.Thread(target=_copy_worker, args=(q, errors, fk_checks), daemon=True)
        for q in jobs
    ]
    for thread in threads:
        thread.start()
    done = events = 0
    try:
        while any(a < b for a, b, _ in slices):
            for q, piece in zip(jobs, slices, strict=True):
                a, b, eid = piece
                if a >= b:
                    continue
                end = min(b, a + chunk)
                messages, event_rows, piece[2] = generate_chunk(plan, a, end, eid)
                piece[0] = end
                while True:
                    if errors:
                        raise _Stop
                    try:
                        q.put((messages, event_rows), timeout=0.5)
                        break
                    except queue.Full:
                        pass
                done += end - a
                events += piece[2] - eid
                progress(done)
    except _Stop:
        pass
    finally:
        for q in jobs:
            q.put(None)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return {"events": events, "workers": workers, "fk_checks": fk_checks}


def load_sqlite(plan: Plan, chunk: int, progress) -> dict:
    with scopes_disabled():
        plan.first_message_id = (Message.objects.aggregate(m=Max("id"))["m"] or 0) + 1
        eid = (StatusEvent.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    events = 0
    for a in range(0, plan.n, chunk):
        b = min(plan.n, a + chunk)
        messages, rows = [], []
        picks, times = plan.picks[a:b], plan.timeline.times(a, b)
        plan.count(picks, times)
        for i, (pick, t) in enumerate(zip(picks, times, strict=True), start=a):
            p = plan.profiles[pick]
            if t > p.settled:
                p = plan.in_flight(p, t)
            message, evs = p.objects(
                plan.first_message_id + i, eid, t, p.pool[random.getrandbits(POOL_BITS)]
            )
            messages.append(message)
            rows.extend(evs)
            eid += len(evs)
        with scopes_disabled(), transaction.atomic():
            Message.objects.bulk_create(messages, batch_size=500)
            StatusEvent.objects.bulk_create(rows, batch_size=500)
        events += len(rows)
        progress(b)
    return {"events": events, "workers": 1, "fk_checks": True}


# ----------------------------------------------------------------------------------------
# Finishing
# ----------------------------------------------------------------------------------------


def update_rollups(plan: Plan) -> None:
    """Add the new messages to the daily rollups (what rollups.rebuild() would count)."""
    deltas: dict[rollups.Bucket, list[int]] = defaultdict(lambda: [0, 0, 0])
    days: dict[int, date] = {}
    for (p, day), n in plan.tally.items():
        if day not in days:
            days[day] = rollups.day_of(to_datetime(day * DAY))
        f = p.fields
        key = (
            f["company_id"],
            days[day],
            f["channel"],
            f["category"],
            f["message_type"],
            f["status"],
        )
        d = deltas[key]
        d[0] += n
        d[1] += n * f["segments"]
        d[2] += n * f["credits"]
    items = sorted(deltas.items())
    for k in range(0, len(items), 1_000):
        rollups.apply_deltas({key: tuple(v) for key, v in items[k : k + 1_000]})


def update_batches(companies: list[CompanyRef]) -> None:
    """Set the bulk batches' counters and times from their messages."""
    ids = [batch_id for c in companies for batch_id, _, _ in c.batches]
    with scopes_disabled():
        figures = (
            Message.objects.filter(batch_id__in=ids)
            .values("batch_id")
            .order_by()
            .annotate(
                total=Count("id"),
                sent=Count("id", filter=Q(sent_at__isnull=False)),
                delivered=Count("id", filter=Q(status__in=DELIVERED_GROUP)),
                opened=Count("id", filter=Q(status__in={Status.OPENED, Status.CLICKED})),
                failed=Count("id", filter=Q(status__in=FAILED_GROUP)),
                canceled=Count("id", filter=Q(status=Status.CANCELED)),
                pending=Count(
                    "id", filter=Q(status__in={Status.QUEUED, Status.SCHEDULED, Status.SENDING})
                ),
                first=Min("created_at"),
                last=Max("updated_at"),
            )
        )
        for row in figures:
            batch = Batch.objects.get(pk=row["batch_id"])
            batch.total_count, batch.sent_count = row["total"], row["sent"]
            batch.delivered_count, batch.opened_count = row["delivered"], row["opened"]
            batch.failed_count, batch.canceled_count = row["failed"], row["canceled"]
            batch.pending_count = row["pending"]
            batch.planned_count = row["total"]
            batch.created_at = batch.started_at = row["first"]
            if batch.state == Batch.State.FINISHED:
                batch.finished_at = row["last"]
            elif batch.state == Batch.State.STOPPED:
                batch.stopped_at = row["last"]
            batch.save()


def tidy_postgres(vacuum: bool) -> None:
    """Merge GIN pending lists (so searches don't scan them), then VACUUM and/or ANALYZE."""
    tables = [Message._meta.db_table, StatusEvent._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
            "WHERE am.amname = 'gin' AND i.indrelid = ANY(%s::regclass[])",
            [tables],
        )
        for (index,) in cursor.fetchall():
            cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])
        verb = "VACUUM (ANALYZE)" if vacuum and not connection.in_atomic_block else "ANALYZE"
        tables += [Batch._meta.db_table, Contact._meta.db_table]
        cursor.execute(f"{verb} {', '.join(tables)}")


# ----------------------------------------------------------------------------------------


def seed_bulk(
    messages: int,
    companies: int = 5,
    *,
    workers: int | None = None,
    chunk: int = 20_000,
    seed: int | None = None,
    fk_checks: bool = False,
    vacuum: bool = False,
    log: TextIO | None = None,
) -> dict:
    """Add `messages` synthetic messages with their events; return the figures.

    `workers`: parallel COPY connections (PostgreSQL; default 2). `fk_checks`: keep the
    per-row foreign-key triggers, which roughly doubles the database's work (they are
    always kept when the database role is not a superuser).
    """
    started = time.perf_counter()
    postgres = connection.vendor == "postgresql"
    seed = random.SystemRandom().randrange(1 << 30) if seed is None else seed
    refs = ensure_companies(companies)
    plan = make_plan(messages, refs, seed, binary=postgres)
    loading = time.perf_counter()

    shown = [0]

    def progress(done: int) -> None:  # a line at every tenth of the way
        if log is not None and (done * 10 // messages > shown[0] or done == messages):
            shown[0] = done * 10 // messages
            log.write(f"{done:,}/{messages:,} messages, {time.perf_counter() - started:.1f}s\n")
            log.flush()

    if messages <= 0:
        result = {"events": 0, "workers": 0, "fk_checks": True}
    elif postgres:
        result = load_postgres(plan, workers or 2, chunk, fk_checks, progress)
    else:
        result = load_sqlite(plan, min(chunk, 1_000), progress)
    finishing = time.perf_counter()
    update_rollups(plan)
    update_batches(refs)
    if postgres:
        tidy_postgres(vacuum)
    seconds = time.perf_counter() - started
    return {
        "messages": messages,
        "events": result["events"],
        "seconds": round(seconds, 3),
        "messages_per_s": round(messages / seconds),
        "events_per_s": round(result["events"] / seconds),
        "setup_seconds": round(loading - started, 3),
        "load_seconds": round(finishing - loading, 3),
        "finish_seconds": round(time.perf_counter() - finishing, 3),
        "companies": companies,
        "backend": connection.vendor,
        "workers": result["workers"],
        "fk_checks": result["fk_checks"],
        "seed": seed,
    }
