"""Recording status events and applying them to their messages.

Every report is stored once (its dedupe key comes from its content) and the messages'
status fields are then recomputed from their whole event sets by
:func:`msglog.rules.statuses.derive`, under row locks, so concurrent writers and
re-deliveries cannot lose or double anything. Everything works on many messages at
once (`record_events`, `refresh_messages`), which is how workers apply reports; the
single-message forms are that with a list of one.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from msglog.models import Message, StatusEvent
from msglog.rules.dedupe import dedupe_key
from msglog.rules.provider_interface import ProviderReport
from msglog.rules.statuses import DERIVED_FIELDS, EventFact, derive
from msglog.services import batch_counters, rollups
from msglog.services.bulk_writes import insert_new, update_fields

#: The StatusEvent fields an EventFact is made of, in its order.
FACT_FIELDS = tuple(f.name for f in dataclasses.fields(EventFact))


def new_event(
    message: Message,
    status: str,
    *,
    source: str = StatusEvent.Source.SYSTEM,
    occurred_at: datetime | None = None,
    event: str = "",
    error_code: str = "",
    error_message: str = "",
    reason: str = "",
    provider_event_id: str = "",
    raw_payload: dict | None = None,
    key_parts: tuple | None = None,
    received_at: datetime | None = None,
) -> StatusEvent:
    """An unsaved event. `key_parts` names what identifies the report; by default the
    provider's message id (or ours), the status or event word, and when it happened."""
    occurred_at = occurred_at or timezone.now()
    if key_parts is None:
        key_parts = (
            message.provider_message_id or message.public_id,
            status, event, occurred_at.isoformat(), provider_event_id,
        )  # fmt: skip
    return StatusEvent(
        company_id=message.company_id,
        message_id=message.pk,
        status=status,
        event=event or status,
        occurred_at=occurred_at,
        received_at=received_at or timezone.now(),
        source=source,
        error_code=error_code,
        error_message=error_message,
        reason=reason,
        provider_event_id=provider_event_id,
        raw_payload=raw_payload or {},
        dedupe_key=dedupe_key(*key_parts),
    )


def record_events(events: list[StatusEvent]) -> None:
    """Store many reports (each once: duplicates are skipped) and update their messages."""
    if not events:
        return
    with transaction.atomic():
        insert_new(events)
        refresh_messages({e.message_id for e in events})


def record_event(message: Message, status: str, **fields: Any) -> bool:
    """Store one report about `message` and bring the message up to date.

    Returns False when the same report was already stored (nothing changes).
    """
    return store_event(message, new_event(message, status, **fields))


def store_event(message: Message, event: StatusEvent) -> bool:
    """Store one prepared event and update its message; False for a duplicate."""
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: a duplicate must not spoil the caller's work
                event.save()
        except IntegrityError:
            return False
        refresh_message(message)
    return True


#: What refresh_messages reads of a locked message: the derived fields and what the
#: rollup and batch counter moves read (not its content, which can be large). A field
#: left out would be read by one more query per message, under the lock.
LOCKED_FIELDS = tuple(
    dict.fromkeys(
        (*DERIVED_FIELDS, *rollups.MOVE_FIELDS, *batch_counters.MOVE_FIELDS, "updated_at")
    )
)


def refresh_messages(message_ids: Iterable[int]) -> dict[int, dict]:
    """Recompute messages' status fields from their events, under row locks.

    Returns what changed, by message id. Rollups and batch counters move with each
    status change (rollups.add_move; batch_counters.add_move, the one place batch counters move).
    """
    ids = sorted(set(message_ids))
    if not ids:
        return {}
    now = timezone.now()
    changes: dict[int, dict] = {}
    with transaction.atomic():
        # Locked in id order, so two workers refreshing overlapping sets cannot deadlock.
        locked = list(
            Message.objects.select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
            .only(*LOCKED_FIELDS)
        )
        facts: dict[int, list[EventFact]] = defaultdict(list)
        # Plain rows (no model instances) in no particular order: derive() wants a set.
        for message_id, *fact in (
            StatusEvent.objects.filter(message_id__in=ids)
            .order_by()
            .values_list("message_id", *FACT_FIELDS)
        ):
            facts[message_id].append(EventFact(*fact))
        changed_messages = []
        moves = batch_counters.StatusMoves()
        for message in locked:
            derived = derive(facts[message.pk], initial=message.status).as_fields()
            changed = {k: v for k, v in derived.items() if getattr(message, k) != v}
            if not changed:
                continue
            if "status" in changed:
                moves.add(message, changed["status"])
            for field, value in changed.items():
                setattr(message, field, value)
            message.updated_at = now
            changes[message.pk] = changed
            changed_messages.append(message)
        if changed_messages:
            update_fields(changed_messages, [*DERIVED_FIELDS, "updated_at"])
            moves.apply()
    return changes


def refresh_message(message: Message) -> Message:
    """Recompute one message's status fields from its events, under a row lock."""
    for field, value in refresh_messages([message.pk]).get(message.pk, {}).items():
        setattr(message, field, value)
    return message


def report_event(message: Message, report: ProviderReport, source: str) -> StatusEvent:
    """A provider's report (simulator, poll or webhook) as an unsaved event.

    The dedupe key is the report's content: the provider's message id, status, time and
    event id, so the same report delivered again is stored once.
    """
    return new_event(
        message,
        report.status,
        source=source,
        occurred_at=report.occurred_at,
        event=report.event or report.status,
        error_code=report.error_code,
        error_message=report.error_message,
        provider_event_id=report.provider_event_id,
        raw_payload=report.raw,
        key_parts=(
            report.provider_message_id or message.public_id,
            report.status,
            report.event,
            report.occurred_at.isoformat(),
            report.provider_event_id,
        ),
    )


def apply_report(message: Message, report: ProviderReport, source: str) -> bool:
    """Store one provider report and update its message; False for a duplicate."""
    return store_event(message, report_event(message, report, source))


def record_provider_reports(
    company_id: int, reports: Iterable[tuple[str | int, ProviderReport]], source: str
) -> int:
    """Store providers' reports about the company's messages, each named by the message's
    public id (or its id), and bring the messages up to date; returns how many matched."""
    reports = list(reports)
    by_public_id = {key: report for key, report in reports if isinstance(key, str)}
    by_id = {key: report for key, report in reports if isinstance(key, int)}
    messages = Message.objects.filter(company_id=company_id).filter(
        Q(public_id__in=list(by_public_id)) | Q(pk__in=list(by_id))
    )
    batch = [
        report_event(message, by_public_id.get(message.public_id) or by_id[message.pk], source)
        for message in messages
    ]
    record_events(batch)
    return len(batch)
