"""Bulk sends: create, count, stop and restart batches.

A batch is made in two steps. The admin uploads a CSV (or picks contacts) and gets a
report of what cannot be sent — invalid addresses, duplicates, suppressed ones — kept as
a :class:`BatchUpload`; confirming it creates the :class:`Batch`, and a worker records
the upload's rows as messages in chunks through :func:`sending.send_many`, so sending
starts with the first chunk and the web request never waits for 100,000 rows.

Counters move with the messages, so the Batches page never counts rows. :func:`add_move`
(collect) and :func:`apply_moves` (write, then :func:`settle` the batch's state) are the
one place they move, always beside the daily rollups through :class:`StatusMoves`: in
:func:`events.refresh_messages`, and in the paths that set a status without it (the
claim, the one-UPDATE acceptance in :func:`sending.accept_many`, the set-wise cancel
below); new messages are counted by :func:`count_created`.

Stop takes two commits. The first marks the batch stopped: from then on no claim takes
one of its messages (the claim's WHERE clause, :data:`NOT_STOPPED_SQL`) and a worker
holding claimed ones checks :func:`is_stopped` right before each provider call and
cancels them instead (:func:`cancel_claimed`). The second turns every unsent message
into `canceled`, with an event. Nothing already handed to a provider is recalled.

Restart sends a new batch, linked to the old one, only to the recipients whose messages
failed in a way worth trying again (:data:`statuses.RETRYABLE`, plus invalid or
suppressed ones whose contact's address changed since), never to anyone who already
received it in the batch or its restarts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import F, Func, IntegerField, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from companies import audit
from companies.models import Company, Contact, CreditLedgerEntry
from msglog.models import Batch, BatchUpload, Message, StatusEvent
from msglog.rules.addresses import normalize_address
from msglog.rules.dedupe import dedupe_key_sql
from msglog.rules.kinds import Channel
from msglog.rules.statuses import (
    FAILED_GROUP,
    NEVER_SENT,
    RETRYABLE,
    Status,
)
from msglog.services import queue, rollups
from msglog.services.batch_counters import PENDING, StatusMoves, settle
from msglog.services.bulk_writes import gc_paused
from msglog.services.events import new_event, record_events

if TYPE_CHECKING:
    from django.contrib.auth.models import User
from msglog.services.sending import Recipient, send_many
from msglog.services.uploads import Row

# Recipients recorded per transaction: sending starts once the first chunk commits, so it
# is small; the later ones are bigger (fewer transactions, each still well under a
# second: a Stop waits for the chunk being recorded).
RECORD_CHUNK = 2_000
LATER_RECORD_CHUNK = 10_000

# --- Creating and recording ----------------------------------------------------------------


def confirm(
    upload: BatchUpload, user: User | None = None, restarted_from: Batch | None = None
) -> Batch:
    """Create the batch of a checked upload; a worker records its rows once committed."""
    with transaction.atomic():
        # The rows stay in the database (100,000 of them are megabytes): only their count.
        upload = (
            BatchUpload.objects.select_for_update()
            .defer("rows")
            .annotate(row_count=_json_array_length("rows"))
            .get(pk=upload.pk)
        )
        if upload.batch is not None:
            return upload.batch  # confirmed twice (a double submit): one batch
        now = timezone.now()
        version = upload.template_version
        scheduled = upload.scheduled_for is not None and upload.scheduled_for > now
        batch = Batch.objects.create(
            company_id=upload.company_id,
            name=upload.name,
            channel=version.template.channel,
            template=version.template,
            template_version=version,
            state=Batch.State.SCHEDULED if scheduled else Batch.State.RUNNING,
            created_by=user or upload.uploaded_by,
            restarted_from=restarted_from,
            created_at=now,
            scheduled_for=upload.scheduled_for if scheduled else None,
            started_at=None if scheduled else now,
            planned_count=upload.row_count,
        )
        upload.batch = batch
        upload.save(update_fields=["batch"])

        queue.publish_on_commit("msglog.tasks.record_batch", upload.company_id, upload.pk)
        if not upload.row_count:
            settle([batch.pk])
    return batch


def _json_array_length(field: str) -> Func:
    function = "jsonb_array_length" if connection.vendor == "postgresql" else "json_array_length"
    return Func(F(field), function=function, output_field=IntegerField())


def record_rows(
    upload_id: int, chunk: int = RECORD_CHUNK, later_chunk: int = LATER_RECORD_CHUNK
) -> int:
    """Record an upload's rows as messages of its batch, a chunk per transaction (the
    first `chunk` rows, then `later_chunk` at a time).

    Safe to run twice or concurrently: each chunk locks the upload and moves its
    `recorded_rows` in the same transaction as the messages. Stops early when the batch
    is stopped. Returns how many messages this call recorded.
    """

    with gc_paused():  # decoding 100,000 rows makes 200,000 objects that all stay alive
        upload = BatchUpload.objects.select_related("template_version__template").get(pk=upload_id)
    rows, version = upload.rows, upload.template_version
    template = version.template
    recorded = 0
    while True:
        with transaction.atomic():
            locked = (
                BatchUpload.objects.select_for_update()
                .only("recorded_rows", "batch_id")
                .get(pk=upload_id)
            )
            start = locked.recorded_rows
            assert locked.batch_id is not None  # rows are recorded for a confirmed upload
            batch = Batch.objects.get(pk=locked.batch_id)
            if start >= len(rows) or batch.state == Batch.State.STOPPED:
                return recorded
            part = rows[start : start + (chunk if start == 0 else later_chunk)]
            contacts = Contact.objects.in_bulk([r[2] for r in part if r[2]])
            recipients = [
                Recipient(address=address, name=name, contact=contacts.get(contact_id), context=ctx)
                for address, name, contact_id, ctx in part
            ]
            send_many(
                upload.company,
                channel=template.channel,
                recipients=recipients,
                category=template.category,
                message_type=template.message_type,
                template_version=version,
                batch=batch,
                created_by=batch.created_by,
                scheduled_for=batch.scheduled_for,
                addresses_checked=True,  # an upload's rows hold normalized addresses
            )
            BatchUpload.objects.filter(pk=upload_id).update(recorded_rows=start + len(part))
            recorded += len(part)


# --- Stop ---------------------------------------------------------------------------------

# The claim's guard (sending.claim_many): a stopped batch's messages are never claimed.
NOT_STOPPED_SQL = (
    "(msglog_message.batch_id IS NULL OR NOT EXISTS (SELECT 1 FROM msglog_batch b "
    "WHERE b.id = msglog_message.batch_id AND b.state = 'stopped'))"
)


def is_stopped(batch_id: int | None) -> bool:
    """Whether a batch was stopped (checked by workers right before a provider call)."""
    return (
        batch_id is not None
        and Batch.objects.filter(pk=batch_id, state=Batch.State.STOPPED).exists()
    )


def stopped_among(batch_ids: Iterable[int | None]) -> set[int]:
    """Which of these batches were stopped, in one query (the check before a provider
    call that hands over many messages at once)."""
    ids = {batch_id for batch_id in batch_ids if batch_id is not None}
    if not ids:
        return set()
    return set(
        Batch.objects.filter(pk__in=ids, state=Batch.State.STOPPED).values_list("pk", flat=True)
    )


def stoppable(batch: Batch) -> bool:
    return batch.state in (Batch.State.RUNNING, Batch.State.SCHEDULED)


# Up to this many unsent messages are canceled within the Stop request; more are
# canceled by a worker right after (the stop itself is committed first either way).
CANCEL_INLINE_LIMIT = 5_000


@dataclass
class StopResult:
    stopped: bool
    canceled: int = 0  # canceled by now
    canceling: int = 0  # being canceled by a worker
    already_sent: int = 0
    committed_at: datetime | None = None  # when no more claims could take its messages


def stop(batch: Batch, user: User | None = None, request: HttpRequest | None = None) -> StopResult:
    """Stop a running or scheduled batch: nothing more is claimed, unsent ones are
    canceled with an event, and nothing already sent is recalled."""

    now = timezone.now()
    with transaction.atomic():
        # A chunk being recorded holds the upload's lock: the stop waits for it to commit,
        # so the cancel below sees every message the batch will ever have.
        list(BatchUpload.objects.select_for_update().filter(batch_id=batch.pk).only("pk"))
        won = Batch.objects.filter(
            pk=batch.pk, state__in=[Batch.State.RUNNING, Batch.State.SCHEDULED]
        ).update(state=Batch.State.STOPPED, stopped_at=now, stopped_by=user)
    if not won:
        return StopResult(stopped=False)
    committed_at = timezone.now()
    batch.refresh_from_db()
    unsent = batch.pending_count
    canceled = canceling = 0
    if unsent > CANCEL_INLINE_LIMIT:
        # In autocommit (the stop is committed): published now.
        queue.publish_on_commit("msglog.tasks.cancel_batch", batch.company_id, batch.pk)
        canceling = unsent
    else:
        canceled = cancel_unsent(batch)
        batch.refresh_from_db()
    audit.record(
        audit.Action.BATCH_STOPPED,
        f"Stopped batch “{batch.name}”: {canceled or canceling} unsent canceled",
        request=request,
        company=batch.company_id,
        actor=user,
        details={"batch": batch.pk, "canceled": canceled or canceling, "sent": batch.sent_count},
    )
    return StopResult(
        stopped=True,
        canceled=canceled,
        canceling=canceling,
        already_sent=batch.sent_count,
        committed_at=committed_at,
    )


def stop_reason(batch: Batch) -> str:
    who = batch.stopped_by
    name = (who.get_full_name() or who.get_username()) if who is not None else "an admin"
    return f"Batch stopped by {name}."


def cancel_unsent_of(batch_id: int) -> int:
    """Cancel the unsent messages of the batch with this id (0 if it is gone)."""
    batch = Batch.objects.filter(pk=batch_id).first()
    return cancel_unsent(batch) if batch is not None else 0


def cancel_unsent(batch: Batch, chunk: int = 2_000) -> int:
    """Cancel the batch's queued and scheduled messages (its stop is already committed)."""
    reason = stop_reason(batch)
    if connection.vendor == "postgresql":
        canceled = _cancel_set_wise(batch, reason)
        refund_canceled(Message.objects.filter(batch_id=batch.pk))
        return canceled
    canceled = 0
    last = 0
    while True:
        with transaction.atomic():
            messages = list(
                Message.objects.filter(
                    batch_id=batch.pk, status__in=[Status.QUEUED, Status.SCHEDULED], pk__gt=last
                )
                .order_by("pk")
                .only("pk", "company_id", "public_id", "provider_message_id")[:chunk]
            )
            if not messages:
                break
            _cancel(messages, reason)
            canceled += len(messages)
            last = messages[-1].pk
    return canceled


# One statement for a 50,000-message batch instead of 25 rounds of refresh_messages. It
# stores the very event _cancel() would (same dedupe key) and sets exactly the fields
# events.refresh_messages would derive from it: for a queued or scheduled message,
# `canceled` outranks every event it has, carries this reason and no error.
CANCEL_SQL = f"""
WITH target AS (
    SELECT id, status AS old_status FROM msglog_message
    WHERE batch_id = %(batch)s AND status IN ('queued', 'scheduled')
    ORDER BY id FOR UPDATE
), moved AS (
    UPDATE msglog_message m
    SET status = 'canceled', status_reason = %(reason)s, updated_at = %(now)s
    FROM target WHERE m.id = target.id
    RETURNING m.id, m.company_id, m.public_id, m.created_at, m.channel, m.category,
              m.message_type, m.segments, m.credits, target.old_status
), stored AS (
    INSERT INTO msglog_statusevent (company_id, message_id, status, event, occurred_at,
        received_at, source, error_code, error_message, reason, provider_event_id,
        dedupe_key, raw_payload)
    SELECT company_id, id, 'canceled', 'canceled', %(now)s, %(now)s, 'user', '', '',
        %(reason)s, '', {dedupe_key_sql("public_id", "'canceled'")}, '{{}}'::jsonb
    FROM moved
    ON CONFLICT (message_id, dedupe_key) DO NOTHING
)
SELECT company_id, created_at, channel, category, message_type, segments, credits, old_status
FROM moved
"""  # noqa: S608 — only our own SQL (the dedupe key expression) is interpolated


def _cancel_set_wise(batch: Batch, reason: str) -> int:
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CANCEL_SQL, {"batch": batch.pk, "reason": reason, "now": now})
        rows = cursor.fetchall()
        moves = StatusMoves()
        for company_id, created_at, channel, category, kind, segments, credits, old in rows:
            message = Message(
                company_id=company_id,
                created_at=created_at,
                channel=channel,
                category=category,
                message_type=kind,
                segments=segments,
                credits=credits,
                status=old,
                batch_id=batch.pk,
            )
            moves.add(message, Status.CANCELED)
        moves.apply()
    return len(rows)


def cancel_claimed(messages: Sequence[Message]) -> None:
    """Cancel messages a worker claimed but will not hand over: their batch was stopped."""
    _cancel(messages, "The batch was stopped before this one was handed to the provider.")


def _cancel(messages: Sequence[Message], reason: str) -> None:

    now = timezone.now()
    record_events(
        [
            new_event(
                m,
                Status.CANCELED,
                source=StatusEvent.Source.USER,
                occurred_at=now,
                reason=reason,
                key_parts=(m.public_id, Status.CANCELED),
            )
            for m in messages
        ]
    )
    refund_canceled(Message.objects.filter(pk__in=[m.pk for m in messages]))


def refund_canceled(messages: QuerySet) -> int:
    """Give back the credits of canceled SMS in one ledger entry per company."""

    with transaction.atomic():
        charged = list(
            messages.select_for_update()
            .filter(status=Status.CANCELED, credits__gt=0)
            .order_by("pk")
        )
        if not charged:
            return 0
        total = sum(m.credits for m in charged)
        company = Company.objects.select_for_update().get(pk=charged[0].company_id)
        company.sms_credit_balance += total
        Company.objects.filter(pk=company.pk).update(sms_credit_balance=company.sms_credit_balance)
        CreditLedgerEntry.objects.create(
            company=company,
            kind=CreditLedgerEntry.Kind.REFUND,
            amount=total,
            balance_after=company.sms_credit_balance,
            note=f"{len(charged)} SMS of a stopped batch never sent (canceled)",
        )
        Message.objects.filter(pk__in=[m.pk for m in charged]).update(credits=0)
        deltas: dict = {}
        for m in charged:
            key = rollups.bucket(m)
            deltas[key] = (0, 0, deltas.get(key, (0, 0, 0))[2] - m.credits)
        rollups.apply_deltas(deltas)
    return total


# --- Restart -------------------------------------------------------------------------------


@dataclass
class RestartPlan:
    """Who a restart would send to, and why the batch's other recipients are left out."""

    recipients: list[Row]
    left_out: dict[str, int]  # reason -> how many

    @property
    def count(self) -> int:
        return len(self.recipients)


def lineage(batch: Batch) -> list[int]:
    """The ids of the batch, the batch it was restarted from (and so on), and every
    restart of any of them: everyone these reached has received this send."""
    root = batch
    while root.restarted_from_id is not None:
        root = Batch.objects.get(pk=root.restarted_from_id)
    ids, frontier = [root.pk], [root.pk]
    while frontier:
        frontier = list(
            Batch.objects.filter(restarted_from_id__in=frontier).values_list("pk", flat=True)
        )
        ids.extend(frontier)
    return ids


def restartable(batch: Batch) -> bool:
    return batch.state in (Batch.State.STOPPED, Batch.State.FINISHED) and batch.failed_count > 0


def restart_plan(batch: Batch) -> RestartPlan:
    """The failed recipients worth trying again."""
    company = Company.objects.get(pk=batch.company_id)
    received = set(
        Message.objects.filter(batch_id__in=lineage(batch))
        .exclude(status__in=[*PENDING, *NEVER_SENT, *FAILED_GROUP])
        .values_list("to_address", flat=True)
    )
    failed = list(
        Message.objects.filter(batch_id=batch.pk, status__in=FAILED_GROUP)
        .select_related("contact")
        .order_by("pk")
        .only("to_address", "to_name", "status", "contact", "batch_id")
    )
    context_of = {}
    upload = BatchUpload.objects.filter(batch_id=batch.pk).only("rows").first()
    if upload is not None:
        context_of = {row[0]: row[3] for row in upload.rows}

    recipients: list[Row] = []
    left_out: Counter = Counter()
    seen: set[str] = set()
    for message in failed:
        address = message.to_address
        if message.status not in RETRYABLE:
            changed = None
            if message.contact is not None:
                current: str | None = (
                    message.contact.phone if batch.channel == Channel.SMS else message.contact.email
                )
                current = normalize_address(batch.channel, current or "", company.default_region)
                if current and current != address:
                    changed = current
            if changed is None:
                why = (
                    "invalid address (unchanged since)"
                    if message.status == Status.INVALID_RECIPIENT
                    else "suppressed address (unchanged since)"
                )
                left_out[why] += 1
                continue
            address = changed
        if address in received:
            left_out["already received it"] += 1
            continue
        if address in seen:
            left_out["duplicate address"] += 1
            continue
        seen.add(address)
        recipients.append(
            [address, message.to_name, message.contact_id, context_of.get(message.to_address, {})]
        )
    others = batch.total_count - len(failed)
    if others:
        left_out["did not fail (delivered, sent, pending or canceled)"] += others
    return RestartPlan(recipients=recipients, left_out=dict(left_out))


def restart(
    batch: Batch, user: User | None = None, request: HttpRequest | None = None
) -> Batch | None:
    """A new batch, linked to this one, for the recipients :func:`restart_plan` picks."""

    if not restartable(batch):
        return None
    plan = restart_plan(batch)
    if not plan.count or batch.template_version_id is None:
        return None
    upload = BatchUpload(
        company_id=batch.company_id,
        name=f"{batch.name} (restart)"[:200],
        template_version_id=batch.template_version_id,
        rows=plan.recipients,
        report={"restart_of": batch.pk, "left_out": plan.left_out},
        uploaded_by=user,
    )
    upload.save()
    new = confirm(upload, user, restarted_from=batch)
    audit.record(
        audit.Action.BATCH_RESTARTED,
        f"Restarted batch “{batch.name}” for {plan.count} failed recipients",
        request=request,
        company=batch.company_id,
        actor=user,
        details={
            "batch": batch.pk,
            "restart": new.pk,
            "recipients": plan.count,
            "left_out": plan.left_out,
        },
    )
    return new
