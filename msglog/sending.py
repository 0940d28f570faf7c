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

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from companies.models import Company, Contact, CreditLedgerEntry
from templates_app.models import MessageTemplateVersion
from templates_app.rendering import render

from . import batches, rollups
from .events import apply_report, new_event, record_event, record_events
from .kinds import Category, Channel
from .models import Batch, Message, StatusEvent, Suppression
from .providers import get_provider, provider_name
from .providers.base import (
    Accepted,
    AmbiguousError,
    NotFound,
    Outgoing,
    PermanentError,
    TransientError,
)
from .segments import count_segments
from .statuses import NEVER_SENT, Status

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# Backoff stays far below the broker's visibility timeout: no countdown may outlast it.
MAX_BACKOFF_SECONDS = 300
SENDING_TIMEOUT = timedelta(seconds=getattr(settings, "SENDING_TIMEOUT_SECONDS", 120))
GIVE_UP_AFTER = timedelta(hours=24)
TASK_CHUNK = 100
TWILIO_STATUS_PATH = "/webhooks/twilio/status/"


# --- Checks ---------------------------------------------------------------------------------


def normalize_phone(number: str, region: str) -> str | None:
    """E.164 for a valid number (read in the company's default region), else None."""
    try:
        parsed = phonenumbers.parse(number, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(address: str) -> str | None:
    address = address.strip()
    try:
        validate_email(address)
    except ValidationError:
        return None
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


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


def suppressions_for(company: Company, channel: str, addresses: Iterable[str]) -> dict:
    wanted = [a for a in set(addresses) if a]
    found: dict[str, Suppression] = {}
    for start in range(0, len(wanted), 5000):
        for entry in Suppression.objects.filter(
            company=company, channel=channel, address__in=wanted[start : start + 5000]
        ):
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
) -> list[Message]:
    """Record, check and queue a message for each recipient, in bulk."""
    now = timezone.now()
    content = content or Content()
    # SMS sends lock the company row: credits are reserved against one balance at a time.
    companies = Company.objects.select_for_update() if channel == Channel.SMS else Company.objects
    company = companies.get(pk=company.pk)
    raw = [r.address_for(channel) for r in recipients]
    normalized = [normalize_address(channel, a or "", company.default_region) for a in raw]
    suppressed = suppressions_for(company, channel, [a for a in normalized if a])
    provider = provider_name(channel)
    scheduled = scheduled_for is not None and scheduled_for > now

    messages: list[Message] = []
    verdicts: list[Verdict] = []
    for recipient, address, raw_address in zip(recipients, normalized, raw, strict=True):
        context = {
            "name": recipient.name,
            "first_name": recipient.name.split(" ")[0],
            **recipient.context,
        }
        body = rendered(template_version, content, context)
        segments, encoding = count_segments(body.text) if channel == Channel.SMS else (0, "")
        verdict = check(
            company, channel, address, raw_address or "", category, recipient.contact, suppressed
        )
        verdicts.append(verdict)
        messages.append(
            Message(
                company=company,
                channel=channel,
                to_address=address or raw_address or "",
                to_name=recipient.name or (recipient.contact.name if recipient.contact else ""),
                contact=recipient.contact,
                category=category,
                message_type=message_type,
                template=template_version.template if template_version else None,
                template_version=template_version,
                subject=body.subject,
                body_text=body.text,
                body_html=body.html,
                provider=provider,
                segments=segments,
                encoding=encoding,
                batch=batch,
                created_by=created_by,
                idempotency_key=idempotency_key,
                created_at=now,
                updated_at=now,
                scheduled_for=scheduled_for if scheduled else None,
                metadata=metadata or {},
            )
        )

    # Credits last, in order, with the company row locked: never below zero.
    balance = company.sms_credit_balance
    charged = 0
    for message, verdict in zip(messages, verdicts, strict=True):
        if verdict.status is None and channel == Channel.SMS:
            if message.segments > balance:
                verdict.status = Status.INSUFFICIENT_CREDITS
                verdict.reason = (
                    f"Needs {message.segments} credit{'s' if message.segments != 1 else ''}; "
                    f"the balance was {balance}."
                )
            else:
                balance -= message.segments
                charged += message.segments
                message.credits = message.segments
        if verdict.status:
            message.status, message.status_reason = verdict.status, verdict.reason
            message.failed_at = now
        else:
            message.status = Status.SCHEDULED if scheduled else Status.QUEUED
    Message.objects.bulk_create(messages, batch_size=2000)

    events = []
    for message, verdict in zip(messages, verdicts, strict=True):
        first = Status.SCHEDULED if scheduled and not verdict.status else Status.QUEUED
        events.append(
            new_event(
                message,
                first,
                occurred_at=now,
                received_at=now,
                key_parts=(message.public_id, first, now.isoformat()),
            )
        )
        if verdict.status:
            events.append(
                new_event(
                    message,
                    verdict.status,
                    occurred_at=now,
                    received_at=now,
                    reason=verdict.reason,
                    key_parts=(message.public_id, verdict.status, now.isoformat()),
                )
            )
    StatusEvent.objects.bulk_create(events, batch_size=5000)

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
        html=message.body_html,
        status_callback_url=callback,
        metadata={"attempt": attempt},
    )


def claim(message_id: int) -> Message | None:
    """Take a queued message for sending; None if another worker (or a stop) got there first."""
    now = timezone.now()
    won = Message.objects.filter(pk=message_id, status=Status.QUEUED).update(
        status=Status.SENDING, attempts=F("attempts") + 1, updated_at=now
    )
    if not won:
        return None
    message = Message.objects.select_related("company").get(pk=message_id)
    record_event(
        message,
        Status.SENDING,
        occurred_at=now,
        key_parts=(message.public_id, "sending", message.attempts),
    )
    return message


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
    """Record what the providers said when they took these messages, in one go."""
    if not handed_over:
        return
    for message, accepted, _ in handed_over:
        message.provider_message_id = accepted.provider_message_id
    Message.objects.bulk_update([m for m, _, _ in handed_over], ["provider_message_id"])
    record_events(
        [
            new_event(
                m,
                a.status or Status.SENT,
                source=source,
                event="accepted",
                raw_payload=a.raw,
                key_parts=(a.provider_message_id, "accepted"),
            )
            for m, a, source in handed_over
        ]
    )
    simulated = [m for m, _, _ in handed_over if m.provider == "simulator"]
    if simulated:
        from .tasks import schedule_simulated_reports

        schedule_simulated_reports(simulated)


def claim_many(company_id: int, message_ids: Sequence[int]) -> list[Message]:
    """Claim the queued ones of these messages with one conditional update; returns those
    this worker won (a message another worker or a stop took first is not among them)."""
    if not message_ids:
        return []
    now = timezone.now()
    placeholders = ", ".join(["%s"] * len(message_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Message._meta.db_table} SET status = %s, attempts = attempts + 1, "  # noqa: S608
            f"updated_at = %s WHERE company_id = %s AND status = %s AND id IN ({placeholders}) "
            f"AND {batches.NOT_STOPPED_SQL} "  # never a message of a stopped batch (issue 6)
            "RETURNING id",
            [Status.SENDING, now, company_id, Status.QUEUED, *message_ids],
        )
        won = [row[0] for row in cursor.fetchall()]
    if not won:
        return []
    messages = list(Message.objects.select_related("company").filter(pk__in=won).order_by("pk"))
    record_events(
        [
            new_event(
                m, Status.SENDING, occurred_at=now, key_parts=(m.public_id, "sending", m.attempts)
            )
            for m in messages
        ]
    )
    return messages


FLUSH_EVERY = 25  # handed-over messages recorded together; a crash leaves at most this many


def deliver_many(company_id: int, message_ids: Sequence[int]) -> list[str]:
    """Hand a chunk of messages to their providers, each at most once (the task's work)."""
    outcomes = dict.fromkeys(message_ids, "not ours")
    handed_over: list[tuple[Message, Accepted, str]] = []
    providers: dict[tuple[str, str], object] = {}
    for message in claim_many(company_id, message_ids):
        if batches.is_stopped(message.batch_id):  # the last check before the call
            batches.cancel_claimed([message])
            outcomes[message.pk] = Status.CANCELED
            continue
        key = (message.channel, message.provider)
        provider = providers.get(key) or providers.setdefault(
            key, get_provider(message.channel, message.provider or None)
        )
        try:
            accepted = provider.send(outgoing_for(message, message.attempts))
        except (TransientError, PermanentError, AmbiguousError) as error:
            accept_many(handed_over)
            handed_over.clear()
            outcomes[message.pk] = _refused(message, message.attempts, error, provider.name)
            continue
        handed_over.append((message, accepted, provider.name))
        outcomes[message.pk] = "sent"
        if len(handed_over) >= FLUSH_EVERY:
            accept_many(handed_over)
            handed_over.clear()
    accept_many(handed_over)
    return [outcomes[pk] for pk in message_ids]


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
        suppress(message, Suppression.Reason.SMS_STOP, note=f"Provider error {error.code}")
    if status in NEVER_SENT:
        refund(message)
    return status


def suppress(message: Message, reason: str, note: str = "") -> None:
    """Add the message's address to its company's suppression list and flag the contact."""
    Suppression.objects.get_or_create(
        company_id=message.company_id,
        channel=message.channel,
        address=message.to_address,
        defaults={"reason": reason, "message": message, "note": note},
    )
    contacts = Contact.objects.filter(company_id=message.company_id)
    if message.channel == Channel.SMS:
        contacts.filter(phone=message.to_address).update(sms_opted_out=True)
    else:
        contacts.filter(email__iexact=message.to_address).update(email_bounced=True)


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
        .exclude(provider_message_id="")
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
