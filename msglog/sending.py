"""Sending (SPEC §5): the one entry point that records messages, and the worker side.

`send()` and `send_many()` render, store and check messages in one transaction and
publish their tasks after it commits. The checks run in SPEC order, and the first that
fails becomes the message's status without any provider call: channel disabled,
invalid address, suppressed (or opted out of marketing), too few SMS credits. Credits
are reserved with the company row locked, so concurrent sends never overspend, and
every movement is in the ledger.

`deliver()` runs in a worker. It claims a message with one conditional update
(queued -> sending) and only the winner calls the provider. Retries of a transient
error keep the claim by its attempt number. An answer that leaves the outcome unknown
is never sent again blindly: `reconcile()` asks the provider first.
"""

from __future__ import annotations

import functools
import gc
import itertools
import json
import logging
import operator
import random
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.db.models.base import ModelState
from django.utils import timezone

from companies.models import Company, Contact, CreditLedgerEntry
from templates_app.models import MessageTemplateVersion
from templates_app.rendering import compile_text, placeholders, render

from . import batches, rollups, suppressions
from .bulk_update import insert_new, reserve_ids, update_fields
from .dedupe import dedupe_key_sql
from .events import apply_report, new_event, record_event, refresh_messages
from .kinds import Category, Channel
from .models import HAS_PROVIDER_ID, Batch, Message, StatusEvent, Suppression, new_public_ids
from .providers import get_provider, provider_name
from .providers.base import (
    Accepted,
    AmbiguousError,
    NotFound,
    Outgoing,
    PermanentError,
    Provider,
    ProviderError,
    TransientError,
)
from .segments import count_segments
from .statuses import NEVER_SENT, Status
from .webhooks.tracking import html_for_sending

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# Backoff stays far below the broker's visibility timeout: no countdown may outlast it.
MAX_BACKOFF_SECONDS = 300
SENDING_TIMEOUT = timedelta(seconds=getattr(settings, "SENDING_TIMEOUT_SECONDS", 120))
GIVE_UP_AFTER = timedelta(hours=24)
# Messages per send task: few enough that a send spreads over many workers, enough that a
# big send publishes tens of tasks, not thousands. A big send's chunks grow so that it
# publishes about TASKS_PER_SEND tasks (each publish costs about a millisecond of the
# sending request), up to MAX_TASK_CHUNK messages each: 100,000 recipients are 50 tasks of
# 2,000. A redelivered task (a killed worker, or one that outlived the broker's visibility
# timeout under a slow rate limit) redoes nothing: its messages are claimed at most once.
MIN_TASK_CHUNK = 500
TASKS_PER_SEND = 50
MAX_TASK_CHUNK = 2_000


def task_chunk(messages: int) -> int:
    """How many message ids each send task of a send of `messages` carries."""
    return min(MAX_TASK_CHUNK, max(MIN_TASK_CHUNK, -(-messages // TASKS_PER_SEND)))


TWILIO_STATUS_PATH = "/webhooks/twilio/status/"


# --- Checks ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65_536)
def normalize_phone(number: str, region: str) -> str | None:
    """E.164 for a valid number (read in the company's default region), else None.

    Parsing and validating a number costs ~20 µs; the verdicts are remembered, as the
    same patients and clients get message after message (and a file repeats numbers).
    """
    try:
        parsed = phonenumbers.parse(number, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(address: str) -> str | None:
    """The address with its domain in lower case, if Django's `validate_email` accepts it.

    The same test as the validator's, with each domain's verdict remembered: a bulk send
    names the same few domains thousands of times.
    """
    address = address.strip()
    if not address or "@" not in address or len(address) > 320:
        return None
    local, _, domain = address.rpartition("@")
    if not _EMAIL_USER_MATCH(local) or not _valid_domain(domain):
        return None
    return f"{local}@{domain.lower()}"


# Django's own user-part pattern, compiled here once: the validator keeps it behind a lazy
# object whose every use costs more than the match itself.
_EMAIL_USER_MATCH = re.compile(
    validate_email.user_regex.pattern, validate_email.user_regex.flags
).match


@functools.lru_cache(maxsize=4096)
def _valid_domain(domain: str) -> bool:
    try:
        validate_email(f"user@{domain}")
    except ValidationError:
        return False
    return True


def normalize_address(channel: str, address: str, region: str) -> str | None:
    if channel == Channel.SMS:
        return normalize_phone(address, region)
    return normalize_email(address)


@dataclass
class Recipient:
    """One person a message goes to: an address, or a contact (whose address is used)."""

    address: str = ""
    name: str = ""
    contact: Contact | None = None
    context: dict = field(default_factory=dict)

    def address_for(self, channel: str) -> str:
        if self.address or self.contact is None:
            return self.address
        return self.contact.phone if channel == Channel.SMS else self.contact.email


@dataclass
class Verdict:
    """The outcome of the checks for one message: None means it may be sent."""

    status: str | None
    reason: str = ""


def check(
    company: Company,
    channel: str,
    address: str | None,
    raw_address: str,
    category: str,
    contact: Contact | None,
    suppressed: dict[str, Suppression],
) -> Verdict:
    """The checks that need no credits, in SPEC order (credits are reserved afterwards)."""
    if channel == Channel.SMS and not company.sms_enabled:
        return Verdict(Status.CHANNEL_DISABLED, f"SMS is disabled for {company.name}.")
    if channel == Channel.EMAIL and not company.email_enabled:
        return Verdict(Status.CHANNEL_DISABLED, f"Email is disabled for {company.name}.")
    if address is None:
        what = "phone number" if channel == Channel.SMS else "email address"
        shown = raw_address or "(none)"
        return Verdict(Status.INVALID_RECIPIENT, f"{shown} is not a valid {what}.")
    if address in suppressed:
        entry = suppressed[address]
        return Verdict(
            Status.SUPPRESSED,
            f"On the suppression list: {entry.get_reason_display()} "
            f"since {entry.created_at:%Y-%m-%d}.",
        )
    if contact is not None:
        if channel == Channel.SMS and contact.sms_opted_out:
            return Verdict(Status.SUPPRESSED, "The contact opted out of SMS.")
        if channel == Channel.EMAIL and contact.email_bounced:
            return Verdict(Status.SUPPRESSED, "The contact's email address bounced.")
        if category == Category.MARKETING and contact.marketing_opt_out:
            return Verdict(Status.SUPPRESSED, "The contact opted out of marketing messages.")
    return Verdict(None)


# Above this many addresses, a send reads the company's whole suppression list on the
# channel when the list is the shorter of the two: one read instead of many lookups.
WHOLE_LIST_ABOVE = 1000


def whole_suppression_list(company: Company, channel: str, addresses: int) -> dict | None:
    """The company's whole suppression list on `channel`, by address, if a send to this
    many `addresses` is big and the list is shorter than it; else None."""
    if addresses <= WHOLE_LIST_ABOVE:
        return None
    entries = Suppression.objects.filter(company=company, channel=channel)
    if entries.count() >= addresses:
        return None
    return {e.address: e for e in entries.iterator(2000)}


def suppressions_for(company: Company, channel: str, addresses: Iterable[str]) -> dict:
    """The suppression entries of these addresses, by address."""
    wanted = [a for a in set(addresses) if a]
    if not wanted:
        return {}
    whole = whole_suppression_list(company, channel, len(wanted))
    if whole is not None:
        wanted_set = set(wanted)
        return {address: e for address, e in whole.items() if address in wanted_set}
    return _suppressions_looked_up(company, channel, wanted)


def _suppressions_looked_up(company: Company, channel: str, wanted: list[str]) -> dict:
    """The suppression entries of these distinct addresses, looked up by address."""
    entries = Suppression.objects.filter(company=company, channel=channel)
    found: dict[str, Suppression] = {}
    for start in range(0, len(wanted), 5000):
        for entry in entries.filter(address__in=wanted[start : start + 5000]):
            found[entry.address] = entry
    return found


# --- Recording ------------------------------------------------------------------------------


@dataclass
class Content:
    subject: str = ""
    text: str = ""
    html: str = ""


def rendered(version: MessageTemplateVersion | None, content: Content, context: dict) -> Content:
    source = version or content
    return Content(
        subject=render(source.subject, context),
        text=render(source.text, context),
        html=render(source.html, context, escape=True),
    )


def send(
    company: Company,
    *,
    channel: str,
    recipient: Recipient,
    category: str,
    message_type: str,
    template_version: MessageTemplateVersion | None = None,
    content: Content | None = None,
    batch: Batch | None = None,
    idempotency_key: str = "",
    created_by=None,
    scheduled_for: datetime | None = None,
    metadata: dict | None = None,
) -> Message:
    """Record one message, check it, and publish its send task once committed.

    With an idempotency key already used by this company, the message sent then is
    returned and nothing new happens.
    """
    if idempotency_key:
        existing = Message.objects.filter(company=company, idempotency_key=idempotency_key).first()
        if existing:
            return existing
    try:
        with transaction.atomic():
            (message,) = send_many(
                company,
                channel=channel,
                recipients=[recipient],
                category=category,
                message_type=message_type,
                template_version=template_version,
                content=content,
                batch=batch,
                created_by=created_by,
                scheduled_for=scheduled_for,
                idempotency_key=idempotency_key,
                metadata=metadata,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        # The same key, sent concurrently: the other request's message stands.
        return Message.objects.get(company=company, idempotency_key=idempotency_key)
    return message


@transaction.atomic
def send_many(
    company: Company,
    *,
    channel: str,
    recipients: Sequence[Recipient],
    category: str,
    message_type: str,
    template_version: MessageTemplateVersion | None = None,
    content: Content | None = None,
    batch: Batch | None = None,
    created_by=None,
    scheduled_for: datetime | None = None,
    idempotency_key: str = "",
    metadata: dict | None = None,
    addresses_checked: bool = False,
) -> list[Message]:
    """Record, check and queue a message for each recipient, in bulk.

    Big sends on PostgreSQL are written with COPY (see `CopyWriter`); everything else
    (a single send, SQLite in embedded mode) with the ORM. Both store the same rows.

    `addresses_checked` says every recipient's address is already what
    `normalize_address` made of it (a checked batch upload's rows): it is not parsed
    again (a phone number costs ~20 µs), and the other checks run as always.
    """
    now = timezone.now()
    # SMS sends lock the company row: credits are reserved against one balance at a time.
    companies = Company.objects.select_for_update() if channel == Channel.SMS else Company.objects
    company = companies.get(pk=company.pk)
    raw = [r.address_for(channel) or "" for r in recipients]
    region = company.default_region
    normalized: Iterable[str | None]
    suppressed = whole_suppression_list(company, channel, len(raw))
    if addresses_checked:
        normalized = [a or None for a in raw]
    elif suppressed is None:
        normalized = [normalize_address(channel, a, region) for a in raw]
    else:
        # A big send: each address is normalized as its row is made, while the COPY runs.
        normalized = (normalize_address(channel, a, region) for a in raw)
    if suppressed is None:
        # whole_suppression_list has declined the whole list: look the addresses up.
        suppressed = _suppressions_looked_up(company, channel, [a for a in set(normalized) if a])
    scheduled = scheduled_for is not None and scheduled_for > now
    render_for = Renderer(template_version or content or Content(), channel)
    common = {
        "company_id": company.pk,
        "channel": channel,
        "category": category,
        "message_type": message_type,
        "template_id": template_version.template_id if template_version else None,
        "template_version_id": template_version.pk if template_version else None,
        "provider": provider_name(channel),
        "provider_message_id": "",
        "error_code": "",
        "error_message": "",
        "batch_id": batch.pk if batch else None,
        "created_by_id": created_by.pk if created_by else None,
        "idempotency_key": idempotency_key,
        "created_at": now,
        "updated_at": now,
        "scheduled_for": scheduled_for if scheduled else None,
        "sent_at": None,
        "delivered_at": None,
        "opened_at": None,
        "clicked_at": None,
        "attempts": 0,
    }
    first_status = Status.SCHEDULED if scheduled else Status.QUEUED

    def checked_rows() -> Iterator[dict]:
        """Each recipient's row, rendered and checked; credits are charged in order, so
        with the company row locked the balance never goes below zero. A generator: the
        COPY sends each row while the next ones are made."""
        balance = company.sms_credit_balance
        public_ids = new_public_ids(len(recipients), now)
        sms = channel == Channel.SMS
        for recipient, address, raw_address, public_id in zip(
            recipients, normalized, raw, public_ids, strict=True
        ):
            contact = recipient.contact
            name = recipient.name
            context = {"name": name, "first_name": name.split(" ")[0], **recipient.context}
            subject, text, html, segments, encoding = render_for(context)
            verdict = check(company, channel, address, raw_address, category, contact, suppressed)
            credits = 0
            # Credits last, in order, with the company row locked: never below zero.
            if verdict.status is None and sms:
                if segments > balance:
                    verdict = Verdict(
                        Status.INSUFFICIENT_CREDITS,
                        f"Needs {segments} credit{'s' if segments != 1 else ''}; "
                        f"the balance was {balance}.",
                    )
                else:
                    balance -= segments
                    credits = segments
            # The columns that vary per message: both stores write exactly these keys.
            yield {
                "public_id": public_id,
                "to_address": address or raw_address,
                "to_name": name or (contact.name if contact else ""),
                "contact_id": contact.pk if contact else None,
                "subject": subject,
                "body_text": text,
                "body_html": html,
                "segments": segments,
                "encoding": encoding,
                "credits": credits,
                "status": verdict.status or first_status,
                "status_reason": verdict.reason,
                "failed_at": now if verdict.status else None,
            }

    store = (
        _store_by_copy
        if connection.vendor == "postgresql" and len(recipients) >= COPY_FROM
        else _store_by_orm
    )
    messages = store(
        company, checked_rows(), len(recipients), common, metadata or {}, first_status, now
    )

    charged = sum(m.credits for m in messages) if channel == Channel.SMS else 0
    if charged:
        Company.objects.filter(pk=company.pk).update(
            sms_credit_balance=F("sms_credit_balance") - charged
        )
        running = company.sms_credit_balance
        ledger = []
        for message in messages:
            if message.credits:
                running -= message.credits
                ledger.append(
                    CreditLedgerEntry(
                        company=company,
                        kind=CreditLedgerEntry.Kind.CHARGE,
                        amount=-message.credits,
                        balance_after=running,
                        message=message,
                        created_by=created_by,
                        note=f"{message.segments}-segment SMS to {message.to_address}",
                    )
                )
        CreditLedgerEntry.objects.bulk_create(ledger, batch_size=5000)
    rollups.count_created(messages)
    if batch is not None:
        batches.count_created(batch, messages)

    ready = [m.pk for m in messages if m.status == Status.QUEUED]
    if ready:
        from .tasks import enqueue_sends  # tasks wrap this module; imported at call time

        enqueue_sends(company.pk, channel, ready)
    return messages


class Renderer:
    """Each recipient's subject, text and HTML (and SMS segments), with each text compiled
    once; recipients whose placeholders have the same values share one rendering."""

    def __init__(self, source: MessageTemplateVersion | Content, channel: str):
        self.subject = compile_text(source.subject)
        self.text = compile_text(source.text)
        self.html = compile_text(source.html, escape=True)
        used = placeholders(source.subject) + placeholders(source.text) + placeholders(source.html)
        self.names = tuple(dict.fromkeys(used))
        self.sms = channel == Channel.SMS
        self.done: dict[tuple, tuple[str, str, str, int, str]] = {}

    def __call__(self, context: dict) -> tuple[str, str, str, int, str]:
        # Values as rendering sees them (str()), so 1 and 1.0 never share a rendering.
        key = tuple(None if (v := context.get(n)) is None else str(v) for n in self.names)
        if (done := self.done.get(key)) is None:
            text = self.text(context)
            segments, encoding = count_segments(text) if self.sms else (0, "")
            done = (self.subject(context), text, self.html(context), segments, encoding)
            self.done[key] = done
        return done


def first_events(row: dict, first_status: str) -> list[tuple[str, str]]:
    """(status, reason) of a new message's events: queued (or scheduled), then the check
    that refused it, if one did. Their dedupe key is (public id, status, creation time)."""
    if row["status"] == first_status:
        return [(first_status, "")]
    return [(first_status, ""), (row["status"], row["status_reason"])]


def _store_by_orm(
    company: Company,
    rows: Iterable[dict],
    count: int,
    common: dict,
    metadata: dict,
    first_status: str,
    now: datetime,
) -> list[Message]:
    rows = list(rows)
    messages = [Message(**common, **row, metadata=dict(metadata)) for row in rows]
    for message in messages:
        message._state.fields_cache["company"] = company
    Message.objects.bulk_create(messages, batch_size=2000)
    stamp = now.isoformat()
    StatusEvent.objects.bulk_create(
        [
            new_event(
                message,
                status,
                occurred_at=now,
                received_at=now,
                reason=reason,
                key_parts=(message.public_id, status, stamp),
            )
            for message, row in zip(messages, rows, strict=True)
            for status, reason in first_events(row, first_status)
        ],
        batch_size=5000,
    )
    return messages


# Sends of at least this many messages are written with COPY on PostgreSQL.
COPY_FROM = 200
# The first events of the messages just copied, made by the database from their rows:
# exactly what `_store_by_orm` writes with `first_events` and `new_event` (the dedupe key
# is `dedupe_key(public_id, status, created_at.isoformat())`), in id order.
FIRST_EVENTS_SQL = f"""
INSERT INTO msglog_statusevent (company_id, message_id, status, event, occurred_at,
    received_at, source, error_code, error_message, reason, provider_event_id, dedupe_key,
    raw_payload)
SELECT m.company_id, m.id, e.status, e.status, %(now)s, %(now)s, %(source)s, '', '',
    e.reason, '', {dedupe_key_sql("m.public_id", "e.status", "%(stamp)s")}, '{{}}'::jsonb
FROM msglog_message m
CROSS JOIN LATERAL (
    SELECT 1 AS n, %(first)s::varchar AS status, ''::varchar AS reason
    UNION ALL
    SELECT 2, m.status, m.status_reason WHERE m.status <> %(first)s
) e
WHERE m.id = ANY(%(ids)s::bigint[])
ORDER BY m.id, e.n
"""  # noqa: S608 — only our own SQL (the dedupe key expression) is interpolated


def _store_by_copy(
    company: Company,
    rows: Iterable[dict],
    count: int,
    common: dict,
    metadata: dict,
    first_status: str,
    now: datetime,
) -> list[Message]:
    """Write the messages with COPY, each row as it is made (so the database works while
    the next rows are rendered and checked), then their first events in one INSERT that
    reads them back. Ids are reserved first, so nothing else has to be read back.

    The columns copied per row are the first row's keys: the rows alone say which columns
    vary, so a value added to them is written, never left to the column's default."""
    db = connection.alias  # once: the proxy's lookup costs more than building a row
    rows = iter(rows)
    first = next(rows)  # a COPY send has at least COPY_FROM rows
    varying = ("id", *first)
    ids = reserve_ids(Message, count)
    with connection.cursor() as cursor:
        writer = CopyWriter(Message, varying, {**common, "metadata": metadata})
        values_of = operator.itemgetter(*varying)
        tail = writer.tail
        messages = []
        with cursor.copy(writer.sql) as copy, gc_paused():
            for pk, row in zip(ids, itertools.chain((first,), rows), strict=True):
                row["id"] = pk
                copy.write_row(values_of(row) + tail)
                messages.append(
                    loaded(Message, {**common, **row, "metadata": dict(metadata)}, company, db)
                )
        cursor.execute(
            FIRST_EVENTS_SQL,
            {
                "now": now,
                "stamp": now.isoformat(),
                "source": StatusEvent.Source.SYSTEM,
                "first": first_status,
                "ids": ids,
            },
        )
    return messages


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk send makes its message objects.

    A 100,000-recipient send creates half a million objects that all stay alive; the
    collector would walk them again and again, finding nothing (a third of the send's
    Python time). Reference counting still frees everything short-lived.

    Pauses may overlap (threads of one web process, a send inside a batch's pause): the
    collector is off from the first one's start to the last one's end, and is turned
    back on only if it was on before.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


class CopyWriter:
    """The COPY of one model's rows: the columns that vary per row first (as given), then
    every other column with one value for all rows (the given ones, else the model's
    default), so a column added to the model later still gets its default."""

    def __init__(self, model, varying: Sequence[str], constants: dict):
        fields = {f.attname: f for f in model._meta.concrete_fields}
        rest = [name for name in fields if name not in varying and not fields[name].primary_key]
        self.tail = tuple(
            _db_value(
                fields[name], constants[name] if name in constants else _default(fields[name])
            )
            for name in rest
        )
        columns = ", ".join(connection.ops.quote_name(fields[n].column) for n in (*varying, *rest))
        self.sql = f"COPY {model._meta.db_table} ({columns}) FROM STDIN"


def _default(field):
    if field.null and not field.has_default():
        return None
    return field.get_default()


def _db_value(field, value):
    if field.get_internal_type() == "JSONField":
        return json.dumps(value)
    return value


def loaded(model, values: dict, company: Company | None = None, db: str | None = None):
    """A model instance as if read from the database (`db`, by default the default
    connection's alias), from a dict of every column.

    What `Model.from_db` does, without its per-field work: a 100,000-recipient send
    would spend seconds in it.
    """
    instance = model.__new__(model)
    instance.__dict__.update(values)
    instance._state = ModelState()
    instance._state.adding = False
    instance._state.db = db or connection.alias
    if company is not None:
        instance._state.fields_cache["company"] = company
    return instance


# --- Worker side ----------------------------------------------------------------------------


class RetryLater(Exception):
    """The task wrapper should run `deliver` again for this attempt after `countdown` s."""

    def __init__(self, attempt: int, countdown: float):
        super().__init__(f"retry attempt {attempt} in {countdown:.0f} s")
        self.attempt = attempt
        self.countdown = countdown


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, at least what the provider asked for."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2**attempt)
    return max(retry_after or 0, random.uniform(ceiling / 2, ceiling))


def outgoing_for(message: Message, attempt: int) -> Outgoing:
    company = message.company
    callback = ""
    if message.channel == Channel.SMS:
        callback = settings.PUBLIC_BASE_URL + TWILIO_STATUS_PATH
    return Outgoing(
        public_id=message.public_id,
        company_id=message.company_id,
        channel=message.channel,
        to=message.to_address,
        to_name=message.to_name,
        sender=company.sms_sender if message.channel == Channel.SMS else company.email_sender,
        subject=message.subject,
        text=message.body_text,
        html=html_for_sending(message),
        status_callback_url=callback,
        metadata={"attempt": attempt},
    )


def claim(message_id: int) -> Message | None:
    """Take a queued message for sending; None if another worker (or a stop) got there first."""
    company_id = Message.objects.filter(pk=message_id).values_list("company_id", flat=True).first()
    if company_id is None:
        return None
    won = claim_many(company_id, [message_id])
    return won[0] if won else None


def take_retry(message_id: int, attempt: int) -> Message | None:
    """Keep the claim for a retry: only the holder of attempt `attempt` moves it on."""
    won = Message.objects.filter(pk=message_id, status=Status.SENDING, attempts=attempt).update(
        attempts=attempt + 1, updated_at=timezone.now()
    )
    if not won:
        return None
    return Message.objects.select_related("company").get(pk=message_id)


def deliver(message_id: int, attempt: int | None = None) -> str:
    """Hand one message to its provider, at most once. Returns what happened, in a word."""
    message = claim(message_id) if attempt is None else take_retry(message_id, attempt)
    if message is None:
        return "not ours"
    if batches.is_stopped(message.batch_id):  # the last check before the call
        batches.cancel_claimed([message])
        return Status.CANCELED
    attempt = message.attempts
    provider = get_provider(message.channel, message.provider or None)
    try:
        accepted = provider.send(outgoing_for(message, attempt))
    except TransientError as error:
        return _transient(message, attempt, error)
    except PermanentError as error:
        return _permanent(message, error, source=provider.name)
    except AmbiguousError as error:
        return _maybe_sent(message, attempt, error, provider.name)
    accept(message, accepted, source=provider.name)
    return "sent"


def accept(message: Message, accepted: Accepted, source: str) -> None:
    accept_many([(message, accepted, source)])


def accept_many(handed_over: list[tuple[Message, Accepted, str]]) -> None:
    """Record what the providers said when they took these messages, in one go.

    The usual case, a message in `sending` that its provider accepted, becomes `sent` with
    one UPDATE ... FROM VALUES for all of them: exactly the fields `statuses.derive` gives
    a message whose new highest event is that acceptance (status sent, no reason, sent_at
    its time; the error fields stay as they were). Anything else (a report that got there
    first, another answer than "sent") goes through `events.record_events`.
    """
    if not handed_over:
        return
    now = timezone.now()
    events = []
    for message, accepted, source in handed_over:
        message.provider_message_id = accepted.provider_message_id
        events.append(
            new_event(
                message,
                accepted.status or Status.SENT,
                source=source,
                event="accepted",
                occurred_at=now,
                raw_payload=accepted.raw,
                key_parts=(accepted.provider_message_id, "accepted"),
            )
        )
    with transaction.atomic():
        moved = _mark_sent(handed_over, now) if connection.vendor == "postgresql" else set()
        insert_new(events)
        rest = [m for m, _, _ in handed_over if m.pk not in moved]
        if rest:
            update_fields(rest, ["provider_message_id"])
            refresh_messages(m.pk for m in rest)
        # The messages moved here bypass refresh_messages: their rollups and batch counters
        # move here, through the same StatusMoves.
        moves = batches.StatusMoves()
        for message, _, _ in handed_over:
            if message.pk in moved:
                moves.add(message, Status.SENT, old_status=Status.SENDING)
                message.status, message.sent_at, message.status_reason = Status.SENT, now, ""
                message.updated_at = now
        moves.apply()
    simulated = [m for m, _, _ in handed_over if m.provider == "simulator"]
    if simulated:
        from .tasks import schedule_simulated_reports

        schedule_simulated_reports(simulated)


def _mark_sent(handed_over: list[tuple[Message, Accepted, str]], now: datetime) -> set[int]:
    """Move the accepted messages still in `sending` to `sent`; returns their ids."""
    plain = [(m, a) for m, a, _ in handed_over if (a.status or Status.SENT) == Status.SENT]
    if not plain:
        return set()
    values = ", ".join(["(%s::bigint, %s::varchar)"] * len(plain))
    params: list = [Status.SENT, now, now]
    for message, accepted in plain:
        params += [message.pk, accepted.provider_message_id]
    params.append(Status.SENDING)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Message._meta.db_table} AS m SET status = %s, status_reason = '', "  # noqa: S608
            "sent_at = %s, updated_at = %s, provider_message_id = v.pmid "
            f"FROM (VALUES {values}) AS v(id, pmid) WHERE m.id = v.id AND m.status = %s "
            "RETURNING m.id",
            params,
        )
        return {row[0] for row in cursor.fetchall()}


def claim_many(company_id: int, message_ids: Sequence[int]) -> list[Message]:
    """Claim the queued ones of these messages with one conditional update; returns those
    this worker won (a message another worker or a stop took first is not among them).

    queued -> sending is what `statuses.derive` gives a queued message whose new highest
    event is `sending` (no reason), so the update sets it directly, and the events and
    the rollup move are written in bulk.
    """
    if not message_ids:
        return []
    now = timezone.now()
    placeholders = ", ".join(["%s"] * len(message_ids))
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Message._meta.db_table} SET status = %s, status_reason = '', "  # noqa: S608
                f"attempts = attempts + 1, updated_at = %s WHERE company_id = %s "
                f"AND status = %s AND id IN ({placeholders}) "
                f"AND {batches.NOT_STOPPED_SQL} "  # never a message of a stopped batch (issue 6)
                "RETURNING id",
                [Status.SENDING, now, company_id, Status.QUEUED, *message_ids],
            )
            won = [row[0] for row in cursor.fetchall()]
        if not won:
            return []
        messages = list(Message.objects.select_related("company").filter(pk__in=won).order_by("pk"))
        insert_new(
            [
                new_event(
                    m,
                    Status.SENDING,
                    occurred_at=now,
                    received_at=now,
                    key_parts=(m.public_id, "sending", m.attempts),
                )
                for m in messages
            ],
        )
        moves = batches.StatusMoves()
        for message in messages:
            moves.add(message, Status.SENDING, old_status=Status.QUEUED)
        moves.apply()
    return messages


# Messages claimed, handed over (in one request, where the provider takes many at once)
# and recorded together: a worker killed in between leaves at most this many in
# `sending`, for reconciliation to settle; the rest of its chunk is still queued, and the
# redelivered task claims them.
FLUSH_EVERY = 100


def deliver_many(company_id: int, message_ids: Sequence[int]) -> list[str]:
    """Hand a chunk of messages to their providers, each at most once (the task's work)."""
    outcomes = dict.fromkeys(message_ids, "not ours")
    # One client per provider for the whole chunk (Twilio's keeps its HTTP session).
    providers: dict[tuple[str, str], Provider] = {}
    for start in range(0, len(message_ids), FLUSH_EVERY):
        by_provider: dict[tuple[str, str], list[Message]] = {}
        for message in claim_many(company_id, message_ids[start : start + FLUSH_EVERY]):
            by_provider.setdefault((message.channel, message.provider), []).append(message)
        for (channel, name), group in by_provider.items():
            if (channel, name) not in providers:
                providers[channel, name] = get_provider(channel, name or None)
            provider = providers[channel, name]
            handed_over: list[tuple[Message, Accepted, str]] = []
            refused: list[tuple[Message, ProviderError]] = []
            stopped: list[Message] = []
            for message, answer in zip(group, _hand_over(provider, group), strict=True):
                if answer is None:
                    stopped.append(message)
                    outcomes[message.pk] = Status.CANCELED
                elif isinstance(answer, ProviderError):
                    refused.append((message, answer))
                else:
                    handed_over.append((message, answer, provider.name))
                    outcomes[message.pk] = "sent"
            if stopped:
                batches.cancel_claimed(stopped)
            accept_many(handed_over)
            for message, error in refused:
                outcomes[message.pk] = _refused(message, message.attempts, error, provider.name)
    return [outcomes[pk] for pk in message_ids]


def _hand_over(provider, messages: list[Message]) -> list[Accepted | ProviderError | None]:
    """The provider's answer for each message: one request for all of them where the
    provider takes many at once (`send_batch`), else one request each.

    None for a message whose batch was stopped: the stop is checked right before the
    call (before the one request, or before each), and such a message is not handed over.
    """
    if hasattr(provider, "send_batch"):
        stopped = batches.stopped_among(m.batch_id for m in messages)  # the last check
        going = [m for m in messages if m.batch_id not in stopped]
        outgoing = [outgoing_for(m, m.attempts) for m in going]
        answers = iter(provider.send_batch(outgoing) if outgoing else [])
        return [None if m.batch_id in stopped else next(answers) for m in messages]
    each: list[Accepted | ProviderError | None] = []
    for message in messages:
        if batches.is_stopped(message.batch_id):  # the last check before the call
            each.append(None)
            continue
        try:
            each.append(provider.send(outgoing_for(message, message.attempts)))
        except ProviderError as error:
            each.append(error)
    return each


def _refused(message: Message, attempt: int, error: Exception, source: str) -> str:
    """What a provider's refusal means for one message of a chunk."""
    if isinstance(error, PermanentError):
        return _permanent(message, error, source=source)
    if isinstance(error, AmbiguousError):
        return _maybe_sent(message, attempt, error, source)
    try:
        return _transient(message, attempt, error)
    except RetryLater as retry:
        from .tasks import enqueue_retry

        enqueue_retry(
            message.company_id,
            message.channel,
            message.pk,
            retry.attempt,
            countdown=retry.countdown,
        )
        return "retry"


def _maybe_sent(message: Message, attempt: int, error: AmbiguousError, source: str) -> str:
    record_event(
        message,
        "",
        event="maybe_sent",
        source=source,
        error_code=error.code,
        error_message=str(error),
        raw_payload=error.raw,
        reason="The provider's answer was lost: it will be asked before anything else.",
        key_parts=(message.public_id, "maybe_sent", attempt),
    )
    return "maybe sent"


def _transient(message: Message, attempt: int, error: TransientError) -> str:
    record_event(
        message,
        "",
        event="retry",
        source=message.provider,
        error_code=error.code,
        error_message=str(error),
        raw_payload=error.raw,
        reason=f"Attempt {attempt} of {MAX_ATTEMPTS} could not be handed over; trying again.",
        key_parts=(message.public_id, "retry", attempt),
    )
    if attempt >= MAX_ATTEMPTS:
        record_event(
            message,
            Status.FAILED,
            error_code=error.code,
            error_message=f"Retries exhausted: {error}",
            key_parts=(message.public_id, "exhausted"),
        )
        return "failed"
    raise RetryLater(attempt, backoff(attempt, error.retry_after))


def _permanent(message: Message, error: PermanentError, source: str) -> str:
    status = error.status or Status.FAILED
    record_event(
        message,
        status,
        source=source,
        error_code=error.code,
        error_message=str(error),
        raw_payload=error.raw,
        key_parts=(message.public_id, "refused", error.code, status),
    )
    if status == Status.SUPPRESSED and message.channel == Channel.SMS:
        suppressions.add(
            message.company_id,
            message.channel,
            message.to_address,
            Suppression.Reason.SMS_STOP,
            message=message,
            note=f"Provider error {error.code}",
        )
    if status in NEVER_SENT:
        refund(message)
    return status


@transaction.atomic
def refund(message: Message) -> int:
    """Give back the credits of a message that was never sent. Safe to call twice."""
    locked = Message.objects.select_for_update().get(pk=message.pk)
    if not locked.credits:
        return 0
    company = Company.objects.select_for_update().get(pk=locked.company_id)
    company.sms_credit_balance += locked.credits
    Company.objects.filter(pk=company.pk).update(sms_credit_balance=company.sms_credit_balance)
    CreditLedgerEntry.objects.create(
        company=company,
        kind=CreditLedgerEntry.Kind.REFUND,
        amount=locked.credits,
        balance_after=company.sms_credit_balance,
        message=locked,
        note=f"Never sent ({locked.get_status_display()})",
    )
    Message.objects.filter(pk=locked.pk).update(credits=0)
    rollups.apply_deltas({rollups.bucket(locked): (0, 0, -locked.credits)})
    refunded, message.credits = locked.credits, 0
    return refunded


# --- Reconciliation and schedules -----------------------------------------------------------


def reconcile(message: Message) -> str:
    """Settle a message left in `sending` by asking its provider; never resend blindly."""
    now = timezone.now()
    # One reconciler per message and round: whoever moves updated_at on owns this round.
    if not Message.objects.filter(
        pk=message.pk, status=Status.SENDING, updated_at=message.updated_at
    ).update(updated_at=now):
        return "busy"
    provider = get_provider(message.channel, message.provider or None)
    try:
        report = provider.lookup(message.provider_message_id, outgoing_for(message, 0))
    except NotFound:
        record_event(
            message,
            "",
            event="reconciled",
            source=StatusEvent.Source.POLL,
            reason="The provider never received it: it is sent again.",
            key_parts=(message.public_id, "not_found", message.attempts),
        )
        from .tasks import enqueue_retry

        enqueue_retry(message.company_id, message.channel, message.pk, message.attempts)
        return "resent"
    if report is None:
        if now - message.created_at > GIVE_UP_AFTER:
            record_event(
                message,
                Status.FAILED,
                source=StatusEvent.Source.POLL,
                error_message="Outcome unknown: the provider could not say whether "
                "it received the message.",
                key_parts=(message.public_id, "unknown"),
            )
            return "failed"
        return "unknown"
    if not message.provider_message_id and report.provider_message_id:
        Message.objects.filter(pk=message.pk).update(provider_message_id=report.provider_message_id)
        message.provider_message_id = report.provider_message_id
    apply_report(message, report, source=StatusEvent.Source.POLL)
    return report.status or "reported"


def stuck_in_sending(now: datetime | None = None) -> list[Message]:
    cutoff = (now or timezone.now()) - SENDING_TIMEOUT
    return list(
        Message.objects.filter(status=Status.SENDING, updated_at__lt=cutoff).select_related(
            "company"
        )[:500]
    )


POLL_SENT_AFTER = timedelta(minutes=10)
POLL_GIVE_UP_AFTER = timedelta(days=3)


def poll_sent(now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Ask providers about messages still `sent` with no final report.

    Providers send callbacks late, twice or never (Twilio sends none for a message's
    initial status, and a lost callback is never repeated): this asks instead, for each
    message at most once per POLL_SENT_AFTER, for POLL_GIVE_UP_AFTER after sending.
    """
    now = now or timezone.now()
    waiting = list(
        Message.objects.filter(
            status=Status.SENT,
            updated_at__lt=now - POLL_SENT_AFTER,
            sent_at__gt=now - POLL_GIVE_UP_AFTER,
        )
        .filter(HAS_PROVIDER_ID)
        .select_related("company")[:limit]
    )
    outcomes: dict[str, int] = {}
    for message in waiting:
        # Claim this round for the message first: two pollers never ask twice.
        if not Message.objects.filter(pk=message.pk, updated_at=message.updated_at).update(
            updated_at=now
        ):
            continue
        provider = get_provider(message.channel, message.provider or None)
        try:
            report = provider.lookup(message.provider_message_id, outgoing_for(message, 0))
        except NotFound:
            report = None
        outcome = "no answer"
        if report is not None and report.status and report.status != Status.SENT:
            apply_report(message, report, source=StatusEvent.Source.POLL)
            outcome = report.status
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def reconcile_day(day: date | None = None) -> dict[str, int]:
    """The daily reconciliation (yesterday by default): every provider that can list a
    day's messages (Twilio) is asked about all it sent that day, and what it says that
    our record lacks (a callback that was lost, a status that changed later) is stored
    as a poll report. Reports already stored are skipped by their dedupe key."""
    day = day or (timezone.now() - timedelta(days=1)).date()
    start = datetime.combine(day, dt_time.min, tzinfo=UTC)
    outcomes = {"updated": 0, "unchanged": 0, "not ours": 0}
    for channel in (Channel.SMS, Channel.EMAIL):
        provider = get_provider(channel)
        if not hasattr(provider, "reports_between"):
            continue
        reports = provider.reports_between(start, start + timedelta(days=1))
        while page := list(itertools.islice(reports, 1000)):
            ours = {
                m.provider_message_id: m
                for m in Message.objects.filter(
                    HAS_PROVIDER_ID,
                    provider=provider.name,
                    provider_message_id__in=[r.provider_message_id for r in page],
                ).select_related("company")
            }
            for report in page:
                message = ours.get(report.provider_message_id)
                if message is None:
                    outcomes["not ours"] += 1
                elif report.status and apply_report(message, report, StatusEvent.Source.POLL):
                    outcomes["updated"] += 1
                else:
                    outcomes["unchanged"] += 1
    return outcomes


QUEUED_TOO_LONG = timedelta(seconds=getattr(settings, "QUEUED_TIMEOUT_SECONDS", 300))


def requeue_stale(now: datetime | None = None) -> int:
    """Publish again the tasks of messages queued for too long (a lost task, a broker
    restart). Safe: a message is claimed once whatever the number of its tasks."""
    now = now or timezone.now()
    stale = Message.objects.filter(status=Status.QUEUED, updated_at__lt=now - QUEUED_TOO_LONG)
    rows = list(stale.values_list("pk", "company_id", "channel")[:5000])
    Message.objects.filter(pk__in=[pk for pk, _, _ in rows], status=Status.QUEUED).update(
        updated_at=now
    )
    by_company: dict[tuple[int, str], list[int]] = {}
    for pk, company_id, channel in rows:
        by_company.setdefault((company_id, channel), []).append(pk)
    from .tasks import enqueue_sends

    for (company_id, channel), ids in by_company.items():
        enqueue_sends(company_id, channel, ids)
    return len(rows)


def dispatch_due(now: datetime | None = None) -> int:
    """Queue scheduled messages whose time has come; returns how many."""
    now = now or timezone.now()
    due = list(
        Message.objects.filter(status=Status.SCHEDULED, scheduled_for__lte=now).values_list(
            "pk", "company_id", "channel"
        )[:5000]
    )
    queued: dict[tuple[int, str], list[int]] = {}
    for pk, company_id, channel in due:
        with transaction.atomic():
            if not Message.objects.filter(pk=pk, status=Status.SCHEDULED).update(
                status=Status.QUEUED, updated_at=now
            ):
                continue
            message = Message.objects.get(pk=pk)
            record_event(
                message, Status.QUEUED, occurred_at=now, key_parts=(message.public_id, "due")
            )
            queued.setdefault((company_id, channel), []).append(pk)
    from .tasks import enqueue_sends

    for (company_id, channel), ids in queued.items():
        enqueue_sends(company_id, channel, ids)
    return sum(len(ids) for ids in queued.values())
