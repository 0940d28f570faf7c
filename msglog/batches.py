"""Bulk sends (SPEC §4 Batches, §5): create, count, stop and restart batches.

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

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F, Func, IntegerField, Q, QuerySet
from django.utils import timezone

from companies.models import Company, Contact
from templates_app.models import MessageTemplateVersion

from . import rollups
from .dedupe import dedupe_key_sql
from .kinds import Channel
from .models import Batch, BatchUpload, Message, StatusEvent
from .statuses import DELIVERED_GROUP, ENGAGEMENT, FAILED_GROUP, NEVER_SENT, RETRYABLE, Status

# Recipients recorded per transaction: sending starts once the first chunk commits, so it
# is small; the later ones are bigger (fewer transactions, each still well under a
# second: a Stop waits for the chunk being recorded).
RECORD_CHUNK = 2_000
LATER_RECORD_CHUNK = 10_000
# Problems listed row by row in the report (all are counted).
REPORT_EXAMPLES = 50
ADDRESS_COLUMNS = {
    Channel.SMS: ("phone", "mobile", "phone_number", "number", "to", "address"),
    Channel.EMAIL: ("email", "email_address", "to", "address"),
}
NAME_COLUMNS = ("name", "full_name")

# --- Counters ---------------------------------------------------------------------------

PENDING = frozenset({Status.QUEUED, Status.SCHEDULED, Status.SENDING})
COUNTERS = (
    "pending_count",
    "sent_count",
    "delivered_count",
    "opened_count",
    "failed_count",
    "canceled_count",
)


def counters_of(status: str) -> tuple[str, ...]:
    """The batch counters a message in `status` counts in (besides the total).

    Sent means handed to a provider, so a bounce counts as sent and failed.
    """
    names = []
    if status in PENDING:
        names.append("pending_count")
    elif status not in NEVER_SENT:
        names.append("sent_count")
    if status in DELIVERED_GROUP:
        names.append("delivered_count")
    if status in ENGAGEMENT:
        names.append("opened_count")
    if status in FAILED_GROUP:
        names.append("failed_count")
    if status == Status.CANCELED:
        names.append("canceled_count")
    return tuple(names)


def counters_for(statuses: Counter) -> dict[str, int]:
    """A batch's counters for messages with these statuses (status -> how many)."""
    counts = dict.fromkeys(COUNTERS, 0)
    for status, n in statuses.items():
        for name in counters_of(status):
            counts[name] += n
    return {"total_count": sum(statuses.values()), **counts}


BatchDeltas = dict[int, Counter]


#: The Message fields `add_move` reads (see rollups.MOVE_FIELDS).
MOVE_FIELDS = ("batch_id", "status")


def add_move(
    deltas: BatchDeltas, message: Message, new_status: str, old_status: str | None = None
) -> None:
    """Count a status change of a batch's message into `deltas` (see :func:`apply_moves`);
    `old_status` where the message already holds the new one."""
    if message.batch_id is None:
        return
    delta = deltas.setdefault(message.batch_id, Counter())
    for name in counters_of(old_status or message.status):
        delta[name] -= 1
    for name in counters_of(new_status):
        delta[name] += 1


def apply_moves(deltas: BatchDeltas) -> None:
    """Add counter deltas to their batches (in id order: no deadlock between workers)."""
    touched = []
    for batch_id, delta in sorted(deltas.items()):
        changes = {name: F(name) + n for name, n in delta.items() if n}
        if changes:
            Batch.objects.filter(pk=batch_id).update(**changes)
            touched.append(batch_id)
    settle(touched)


class StatusMoves:
    """Status changes of many messages, counted together in the daily rollups and in
    their batches' counters: what every path that changes statuses in bulk applies."""

    def __init__(self) -> None:
        self.rollups: dict[rollups.Bucket, list[int]] = {}
        self.batches: BatchDeltas = {}

    def add(self, message: Message, new_status: str, old_status: str | None = None) -> None:
        rollups.add_move(self.rollups, message, new_status, old_status)
        add_move(self.batches, message, new_status, old_status)

    def apply(self) -> None:
        rollups.apply_deltas({k: tuple(v) for k, v in self.rollups.items()})
        apply_moves(self.batches)


def count_created(batch: Batch, messages: Sequence[Message]) -> None:
    """Count newly recorded messages of `batch` in its counters."""
    counts = counters_for(Counter(m.status for m in messages))
    Batch.objects.filter(pk=batch.pk).update(
        **{name: F(name) + n for name, n in counts.items() if n}
    )
    settle([batch.pk])


def settle(batch_ids: Iterable[int]) -> None:
    """Move batches on from their counters: a scheduled one whose messages leave the
    queue is running; a running one with every recipient recorded and none pending is
    finished."""
    ids = list(batch_ids)
    if not ids:
        return
    now = timezone.now()
    batches = Batch.objects.filter(pk__in=ids)
    batches.filter(state=Batch.State.SCHEDULED).filter(
        Q(sent_count__gt=0) | Q(failed_count__gt=0, pending_count=0)
    ).update(state=Batch.State.RUNNING, started_at=now)
    batches.filter(
        state=Batch.State.RUNNING, pending_count=0, total_count__gte=F("planned_count")
    ).update(state=Batch.State.FINISHED, finished_at=now)


# --- Validation ----------------------------------------------------------------------------


@dataclass
class Problem:
    """One recipient row that will not be sent, and why."""

    row: int  # 1-based line number in the file (the header is line 1)
    value: str
    why: str


@dataclass
class Report:
    """What checking an upload found: how many rows will be sent and what is left out."""

    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    suppressed: int = 0
    examples: list[Problem] = field(default_factory=list)
    error: str = ""  # the file as a whole could not be used

    def note(self, kind: str, problem: Problem) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < REPORT_EXAMPLES:
            self.examples.append(problem)

    @property
    def left_out(self) -> int:
        return self.invalid + self.duplicates + self.suppressed

    def as_json(self) -> dict:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "examples": [[p.row, p.value, p.why] for p in self.examples],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict) -> Report:
        examples = [Problem(*item) for item in data.get("examples", [])]
        fields = {k: data.get(k, 0) for k in ("rows", "valid", "invalid", "duplicates")}
        return cls(
            **fields,
            suppressed=data.get("suppressed", 0),
            examples=examples,
            error=data.get("error", ""),
        )


Row = list  # [address, name, contact id or None, {placeholder: value}]


def read_csv(data: bytes | str, channel: str) -> tuple[list[tuple[int, str, str, dict]], str]:
    """The file's recipient rows as (line, address, name, other columns), or an error."""
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().lower().replace(" ", "_") for h in next(reader, [])]
    wanted = ADDRESS_COLUMNS[channel]
    column = next((header.index(name) for name in wanted if name in header), None)
    if column is None:
        what = "phone" if channel == Channel.SMS else "email"
        return [], (
            f"No {what} column: the first line must name the columns, one of them "
            f"“{what}” (also accepted: {', '.join(wanted[1:])})."
        )
    name_column = next((header.index(n) for n in NAME_COLUMNS if n in header), None)
    extra = [
        (i, h)
        for i, h in enumerate(header)
        if h and i not in (column, name_column) and h.isidentifier()
    ]
    rows = []
    for line, values in enumerate(reader, start=2):
        if not "".join(values).strip():  # a blank line, or only blank cells
            continue
        cell = values[column].strip() if column < len(values) else ""
        name = (
            values[name_column].strip()
            if name_column is not None and name_column < len(values)
            else ""
        )
        context = {h: values[i].strip() for i, h in extra if i < len(values)}
        rows.append((line, cell, name, context))
    return rows, ""


def check_rows(
    company: Company, channel: str, rows: Iterable[tuple[int, str, str, dict]]
) -> tuple[list[Row], Report]:
    """Validate recipient rows before anything is sent: the ones to send, and the report.

    Addresses are normalized with the very function sends use; each address is sent to
    once (later rows with the same address are duplicates); suppressed addresses are
    left out, as a send would record them `suppressed`.
    """
    from .sending import normalize_address, suppressions_for

    report = Report()
    seen: dict[str, int] = {}
    keep: list[tuple[int, str, str, dict]] = []
    # Each distinct value is read once: parsing a phone number costs ~20 µs.
    normalized: dict[str, str | None] = {"": None}
    region = company.default_region
    for line, raw, name, context in rows:
        report.rows += 1
        if raw in normalized:
            address = normalized[raw]
        else:
            address = normalized[raw] = normalize_address(channel, raw, region)
        if address is None:
            what = "phone number" if channel == Channel.SMS else "email address"
            report.note("invalid", Problem(line, raw, f"Not a valid {what}."))
        elif address in seen:
            report.note("duplicates", Problem(line, raw, f"Same address as line {seen[address]}."))
        else:
            seen[address] = line
            keep.append((line, address, name, context))
    suppressed = suppressions_for(company, channel, seen)
    send: list[Row] = []
    for line, address, name, context in keep:
        if address in suppressed:
            entry = suppressed[address]
            report.note(
                "suppressed",
                Problem(line, address, f"On the suppression list: {entry.get_reason_display()}."),
            )
        else:
            send.append([address, name, None, context])
    report.valid = len(send)
    return send, report


def upload_csv(
    company: Company,
    *,
    name: str,
    template_version: MessageTemplateVersion,
    data: bytes | str,
    filename: str = "",
    scheduled_for: datetime | None = None,
    uploaded_by=None,
) -> BatchUpload:
    """Check an uploaded CSV and keep it, with its report, until the admin confirms."""
    from .sending import gc_paused

    channel = template_version.template.channel
    with gc_paused():  # 100,000 rows are half a million live objects: nothing to collect
        parsed, error = read_csv(data, channel)
        rows, report = check_rows(company, channel, parsed)
    report.error = error
    return BatchUpload.objects.create(
        company=company,
        name=name,
        filename=filename[:200],
        template_version=template_version,
        scheduled_for=scheduled_for,
        rows=rows,
        report=report.as_json(),
        uploaded_by=uploaded_by,
    )


def upload_contacts(
    company: Company,
    *,
    name: str,
    template_version: MessageTemplateVersion,
    contacts: QuerySet,
    scheduled_for: datetime | None = None,
    uploaded_by=None,
) -> BatchUpload:
    """The chosen contacts as recipients, checked as an upload would be."""
    channel = template_version.template.channel
    field_name = "phone" if channel == Channel.SMS else "email"
    chosen = list(contacts.filter(company=company).order_by("name", "pk"))
    parsed = [(i, getattr(c, field_name), c.name, {}) for i, c in enumerate(chosen, start=1)]
    rows, report = check_rows(company, channel, parsed)
    from .sending import normalize_address

    # Each row keeps its contact (the first with that address), so the contact's
    # opt-outs apply at the send and the log links to the contact.
    contact_of = {
        normalize_address(channel, getattr(c, field_name) or "", company.default_region): c.pk
        for c in reversed(chosen)
    }
    for row in rows:
        row[2] = contact_of.get(row[0])
    return BatchUpload.objects.create(
        company=company,
        name=name,
        template_version=template_version,
        scheduled_for=scheduled_for,
        rows=rows,
        report=report.as_json(),
        uploaded_by=uploaded_by,
    )


# --- Creating and recording ----------------------------------------------------------------


def confirm(upload: BatchUpload, user=None, restarted_from: Batch | None = None) -> Batch:
    """Create the batch of a checked upload; a worker records its rows once committed."""
    with transaction.atomic():
        # The rows stay in the database (100,000 of them are megabytes): only their count.
        upload = (
            BatchUpload.objects.select_for_update()
            .defer("rows")
            .annotate(row_count=_json_array_length("rows"))
            .get(pk=upload.pk)
        )
        if upload.batch_id is not None:
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
        from .tasks import enqueue_record_batch

        enqueue_record_batch(upload.company_id, upload.pk)
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
    from .sending import Recipient, gc_paused, send_many

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


def stop(batch: Batch, user=None, request=None) -> StopResult:
    """Stop a running or scheduled batch: nothing more is claimed, unsent ones are
    canceled with an event, and nothing already sent is recalled."""
    from companies import audit

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
        from .tasks import enqueue_cancel_batch

        enqueue_cancel_batch(batch.company_id, batch.pk)  # autocommit: published now
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
    from .events import new_event, record_events

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
    from companies.models import CreditLedgerEntry

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
    """The failed recipients worth trying again (SPEC §3.2's Failed group, minus invalid
    and suppressed addresses unless the contact's address changed since)."""
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
    from .sending import normalize_address

    recipients: list[Row] = []
    left_out: Counter = Counter()
    seen: set[str] = set()
    for message in failed:
        address = message.to_address
        if message.status not in RETRYABLE:
            changed = None
            if message.contact is not None:
                current = (
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


def restart(batch: Batch, user=None, request=None) -> Batch | None:
    """A new batch, linked to this one, for the recipients :func:`restart_plan` picks."""
    from companies import audit

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


# --- Timeline ------------------------------------------------------------------------------


@dataclass
class Moment:
    """One step of a batch's life, for its timeline."""

    at: datetime | None
    what: str
    who: str = ""
    link: Batch | None = None


def _name(user) -> str:
    return (user.get_full_name() or user.get_username()) if user is not None else ""


def timeline(batch: Batch) -> list[Moment]:
    """Created, scheduled, started, stopped, restarted and finished, in time order."""
    moments = [Moment(batch.created_at, "Created", _name(batch.created_by))]
    if batch.restarted_from_id:
        moments.append(
            Moment(
                batch.created_at, "Restarted from", _name(batch.created_by), batch.restarted_from
            )
        )
    if batch.scheduled_for and batch.state == Batch.State.SCHEDULED:
        moments.append(Moment(batch.scheduled_for, "Scheduled to start"))
    if batch.started_at:
        moments.append(Moment(batch.started_at, "Started"))
    if batch.stopped_at:
        moments.append(Moment(batch.stopped_at, "Stopped", _name(batch.stopped_by)))
    for restart in batch.restarts.select_related("created_by").order_by("created_at"):
        moments.append(
            Moment(restart.created_at, "Restarted as", _name(restart.created_by), restart)
        )
    if batch.finished_at:
        moments.append(Moment(batch.finished_at, "Finished"))
    return sorted(moments, key=lambda m: (m.at is None, m.at or batch.created_at))


def percent(part: int, whole: int) -> int | None:
    return round(100 * part / whole) if whole else None


def figures(batch: Batch) -> dict:
    """What the Batches page shows of a batch, from its counters only."""
    recipients = max(batch.planned_count, batch.total_count)
    # Recipients not yet recorded wait too, unless the batch was stopped before.
    unrecorded = recipients - batch.total_count if batch.state != Batch.State.STOPPED else 0
    delivered_share = percent(batch.delivered_count, recipients) or 0
    failed_share = percent(batch.failed_count, recipients) or 0
    done = batch.total_count - batch.pending_count
    other_share = max(0, (percent(done, recipients) or 0) - delivered_share - failed_share)
    return {
        "recipients": recipients,
        "pending": batch.pending_count + unrecorded,
        "delivered_percent": percent(batch.delivered_count, batch.sent_count),
        "opened_percent": percent(batch.opened_count, batch.delivered_count),
        "delivered_share": delivered_share,
        "failed_share": failed_share,
        "other_share": other_share,
    }
