"""Sending: the one entry point that records messages — render, check, charge,
store — for Compose, batches, the demo and the API.

`send()` and `send_many()` render, store and check messages in one transaction and
publish their tasks after it commits (:func:`queue_sends`). The checks run in a
fixed order, and the first that fails becomes the message's status without any provider
call: channel disabled, invalid address, suppressed (or opted out of marketing), too
few SMS credits. Credits are reserved with the company row locked, so concurrent sends
never overspend, and every movement is in the ledger. The workers' side (claiming,
handing over, retrying) is msglog.services.delivery.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from companies.models import Company, Contact, CreditLedgerEntry
from msglog.models import Batch, Message, StatusEvent, Suppression, new_public_ids
from msglog.queries.suppressions import suppressions_looked_up, whole_suppression_list
from msglog.rules.addresses import normalize_address
from msglog.rules.dedupe import dedupe_key_sql
from msglog.rules.kinds import Category, Channel
from msglog.rules.segments import count_segments
from msglog.rules.statuses import Status
from msglog.services import batch_counters, queue, rollups
from msglog.services.bulk_writes import CopyWriter, gc_paused, loaded, reserve_ids
from msglog.services.events import new_event
from msglog.services.provider_registry import provider_name
from templates_app.models import MessageTemplateVersion
from templates_app.rendering import compile_text, placeholders, render

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

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


def queue_sends(company_id: int, channel: str, message_ids: list[int]) -> None:
    """Publish the send tasks of these queued messages once committed, over one broker
    connection, each with a chunk of ids."""
    size = task_chunk(len(message_ids))
    chunks = [message_ids[start : start + size] for start in range(0, len(message_ids), size)]
    name = (
        "msglog.tasks.send_sms_chunk" if channel == Channel.SMS else "msglog.tasks.send_email_chunk"
    )
    queue.publish_many_on_commit(
        name,
        [(company_id, chunk) for chunk in chunks],
        describe=[f"({company_id}, [{c[0]}..{c[-1]}: {len(c)} ids])" for c in chunks],
    )


# --- Checks ---------------------------------------------------------------------------------


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
    """The checks that need no credits, in their order (credits are reserved afterwards)."""
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


def sent_with_key(company: Company, idempotency_key: str) -> Message | None:
    """The message this company already sent with this idempotency key, if any."""
    return Message.objects.filter(company=company, idempotency_key=idempotency_key).first()


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
    created_by: User | None = None,
    scheduled_for: datetime | None = None,
    metadata: dict | None = None,
) -> Message:
    """Record one message, check it, and publish its send task once committed.

    With an idempotency key already used by this company, the message sent then is
    returned and nothing new happens.
    """
    if idempotency_key:
        existing = sent_with_key(company, idempotency_key)
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
    created_by: User | None = None,
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
    normalized, suppressed = _addresses_and_suppressions(company, channel, raw, addresses_checked)
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

    if channel == Channel.SMS:
        _charge(company, messages, created_by)
    rollups.count_created(messages)
    if batch is not None:
        batch_counters.count_created(batch, messages)

    ready = [m.pk for m in messages if m.status == Status.QUEUED]
    if ready:
        queue_sends(company.pk, channel, ready)
    return messages


def _addresses_and_suppressions(
    company: Company, channel: str, raw: list[str], addresses_checked: bool
) -> tuple[Iterable[str | None], dict[str, Suppression]]:
    """Each recipient's normalized address (None where it is not one) and the company's
    suppressed addresses among them."""
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
        suppressed = suppressions_looked_up(company, channel, [a for a in set(normalized) if a])
    return normalized, suppressed


def _charge(company: Company, messages: list[Message], created_by: User | None) -> None:
    """Take the credits the messages reserved off the (locked) company's balance, with one
    ledger entry each, in order, so each entry's balance_after is the balance it left."""
    charged = sum(m.credits for m in messages)
    if not charged:
        return
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
