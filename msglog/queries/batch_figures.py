"""What the Batches pages show of a batch, from its counters only: figures and timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from msglog.models import Batch


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
