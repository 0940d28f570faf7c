"""Batch counters: kept as messages move, so the Batches page never
counts rows.

:func:`add_move` (collect) and :func:`apply_moves` (write, then :func:`settle` the
batch's state) are the one place they move, always beside the daily rollups through
:class:`StatusMoves`: in :func:`msglog.services.events.refresh_messages`, and in the
paths that set a status without it (the claim and the one-UPDATE acceptance in
msglog.services.delivery, the set-wise cancel in msglog.services.batches); new messages
are counted by :func:`count_created`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from django.db.models import F, Q
from django.utils import timezone

from msglog.models import Batch, Message
from msglog.rules.statuses import (
    DELIVERED_GROUP,
    ENGAGEMENT,
    FAILED_GROUP,
    NEVER_SENT,
    Status,
)
from msglog.services import rollups

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
        rollups.apply_deltas({k: (n, seg, cred) for k, (n, seg, cred) in self.rollups.items()})
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
