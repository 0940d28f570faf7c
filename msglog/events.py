"""Recording status events and applying them to their message (SPEC §3.3).

Every report is stored once (its dedupe key comes from its content) and the
message's status fields are then recomputed from the whole event set by
:func:`msglog.statuses.derive`, under a row lock, so concurrent writers and
re-deliveries cannot lose or double anything.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import rollups
from .models import Message, StatusEvent
from .statuses import EventFact, derive


def dedupe_key(*parts: object) -> str:
    """A stable key from a report's content: the same report always gives the same key."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def fact_of(event: StatusEvent) -> EventFact:
    return EventFact(
        dedupe_key=event.dedupe_key,
        status=event.status,
        occurred_at=event.occurred_at,
        error_code=event.error_code,
        error_message=event.error_message,
        reason=event.reason,
    )


def record_event(
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
) -> bool:
    """Store one report about `message` and bring the message up to date.

    Returns False when the same report was already stored (nothing changes).
    `key_parts` names what identifies the report; by default the provider's message
    id (or ours), the status or event word, and the time it happened.
    """
    occurred_at = occurred_at or timezone.now()
    if key_parts is None:
        key_parts = (
            message.provider_message_id or message.public_id,
            status,
            event,
            occurred_at.isoformat(),
            provider_event_id,
        )
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: a duplicate must not spoil the caller's work
                StatusEvent.objects.create(
                    company_id=message.company_id,
                    message=message,
                    status=status,
                    event=event or status,
                    occurred_at=occurred_at,
                    source=source,
                    error_code=error_code,
                    error_message=error_message,
                    reason=reason,
                    provider_event_id=provider_event_id,
                    raw_payload=raw_payload or {},
                    dedupe_key=dedupe_key(*key_parts),
                )
        except IntegrityError:
            return False
        refresh_message(message)
    return True


def refresh_message(message: Message) -> Message:
    """Recompute a message's status fields from its events, under a row lock."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        facts = [fact_of(e) for e in StatusEvent.objects.filter(message_id=locked.pk)]
        derived = derive(facts, initial=locked.status).as_fields()
        changed = {k: v for k, v in derived.items() if getattr(locked, k) != v}
        if changed:
            if "status" in changed:
                rollups.move(locked, locked.status, changed["status"])
            changed["updated_at"] = timezone.now()
            Message.objects.filter(pk=locked.pk).update(**changed)
            for field, value in changed.items():
                setattr(message, field, value)
                setattr(locked, field, value)
    return message


def apply_report(message: Message, report, source: str) -> bool:
    """A provider's report (simulator, poll or webhook) as an event of its message.

    The dedupe key is the report's content: the provider's message id, status, time and
    event id, so the same report delivered again is stored once.
    """
    return record_event(
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
