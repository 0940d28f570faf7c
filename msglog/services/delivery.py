"""Delivery: the worker side of sending, from the claim to the provider's answer.

:func:`deliver_many` (a send task's chunk) and :func:`deliver` (one message, or a retry)
claim messages with one conditional update (queued -> sending) and only the winner
calls the provider, right after checking that the message's batch was not stopped.
What the provider answers is recorded as events (msglog.services.events): accepted
(sent), refused for good (failed, or the never-sent status it names, with credits
refunded), busy (a retry later, keeping the claim by its attempt number) or unknown
("maybe sent"). An answer that leaves the outcome unknown is never sent again blindly:
:func:`reconcile` asks the provider first. The periodic work that keeps every message
moving lives here too: scheduled sends coming due, lost tasks, messages stuck in
`sending`, and polling providers for reports that never came.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django_scopes import scopes_disabled

from companies.models import Company, CreditLedgerEntry
from companies.tenancy import company_scope
from msglog.models import HAS_PROVIDER_ID, Message, StatusEvent, Suppression
from msglog.rules.kinds import Channel
from msglog.rules.provider_interface import (
    Accepted,
    AmbiguousError,
    NotFound,
    Outgoing,
    PermanentError,
    Provider,
    ProviderError,
    TransientError,
)
from msglog.rules.statuses import NEVER_SENT, Status
from msglog.services import (
    batch_counters,
    batches,
    queue,
    rate_limits,
    rollups,
    sending,
    suppressions,
)
from msglog.services.bulk_writes import insert_new, update_fields
from msglog.services.events import apply_report, new_event, record_event, refresh_messages
from msglog.services.provider_registry import get_provider, provider_name
from msglog.services.tracking import html_for_sending

MAX_ATTEMPTS = 6
# Backoff stays far below the broker's visibility timeout: no countdown may outlast it.
MAX_BACKOFF_SECONDS = 300
SENDING_TIMEOUT = timedelta(seconds=settings.SENDING_TIMEOUT_SECONDS)
GIVE_UP_AFTER = timedelta(hours=24)


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, at least what the provider asked for."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2**attempt)
    return max(retry_after or 0, random.uniform(ceiling / 2, ceiling))


def outgoing_for(message: Message, attempt: int) -> Outgoing:
    company = message.company
    callback = ""
    if message.channel == Channel.SMS:
        callback = settings.PUBLIC_BASE_URL + reverse("twilio-status")
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
    _acceptance_recorded(provider)
    return "sent"


def _acceptance_recorded(provider: Provider) -> None:
    """Tell a provider that reports back by itself (the simulator) that our record of its
    acceptances has committed, so its reports never arrive before the message has its
    provider id; a worker killed before this leaves the message to reconciliation."""
    hook = getattr(provider, "acceptance_recorded", None)
    if hook is not None:
        hook()


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
        moves = batch_counters.StatusMoves()
        for message, _, _ in handed_over:
            if message.pk in moved:
                moves.add(message, Status.SENT, old_status=Status.SENDING)
                message.status, message.sent_at, message.status_reason = Status.SENT, now, ""
                message.updated_at = now
        moves.apply()


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
                f"AND {batches.NOT_STOPPED_SQL} "  # never a message of a stopped batch
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
        moves = batch_counters.StatusMoves()
        for message in messages:
            moves.add(message, Status.SENDING, old_status=Status.QUEUED)
        moves.apply()
    return messages


# Messages claimed, handed over (in one request, where the provider takes many at once)
# and recorded together: a worker killed in between leaves at most this many in
# `sending`, for reconciliation to settle; the rest of its chunk is still queued, and the
# redelivered task claims them.
FLUSH_EVERY = 100


def deliver_paced(company_id: int, channel: str, message_ids: Sequence[int]) -> list[str]:
    """A send task's chunk, in slices, each once the company's and the provider's rate
    limits allow it."""
    provider = provider_name(channel)
    return [
        outcome
        for part in rate_limits.paced(company_id, provider, message_ids)
        for outcome in deliver_many(company_id, part)
    ]


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
            _acceptance_recorded(provider)
            for message, error in refused:
                outcomes[message.pk] = _refused(message, message.attempts, error, provider.name)
    return [outcomes[pk] for pk in message_ids]


def _hand_over(
    provider: Provider, messages: list[Message]
) -> list[Accepted | ProviderError | None]:
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


def _refused(message: Message, attempt: int, error: ProviderError, source: str) -> str:
    """What a provider's refusal means for one message of a chunk."""
    if isinstance(error, PermanentError):
        return _permanent(message, error, source=source)
    if isinstance(error, AmbiguousError):
        return _maybe_sent(message, attempt, error, source)
    assert isinstance(error, TransientError)  # a provider raises only the three kinds
    return _transient(message, attempt, error)


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
    queue_retry(message, attempt, countdown=backoff(attempt, error.retry_after))
    return "retry"


def queue_retry(message: Message, attempt: int, countdown: float = 0) -> None:
    """Have a worker run :func:`deliver` again for the holder of `attempt`, later."""
    channel = "sms" if message.channel == Channel.SMS else "email"
    queue.publish_on_commit(
        f"msglog.tasks.send_{channel}_message",
        message.company_id,
        message.pk,
        attempt,
        countdown=countdown,
    )


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
        queue_retry(message, message.attempts)
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


def reconcile_stuck() -> dict[str, int]:
    """Ask the providers about every message left in `sending` past the timeout, each in
    its company's scope; returns how many ended how."""
    outcomes: dict[str, int] = {}
    with scopes_disabled():
        stuck = stuck_in_sending()
    for message in stuck:
        with company_scope(message.company_id):
            outcome = reconcile(message)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


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
    for (company_id, channel), ids in by_company.items():
        sending.queue_sends(company_id, channel, ids)
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
    for (company_id, channel), ids in queued.items():
        sending.queue_sends(company_id, channel, ids)
    return sum(len(ids) for ids in queued.values())
