"""Provider reports: stored durably on arrival, applied to messages by workers in batches.

The webhook views only authenticate a report, turn it into an :class:`Incoming` (what it
says, in our words) and :func:`store` it: one INSERT that skips a report already stored
(the dedupe key comes from the report's content, so a provider's re-delivery or a replayed
request is stored once), then answer. A worker runs :func:`apply_pending`: it takes
pending reports in id order, up to APPLY_BATCH at a time, with ``SKIP LOCKED`` so several
workers share the work without taking the same report twice, turns each into a
StatusEvent of its message and hands them all to :func:`msglog.services.events.record_events` —
the one event path, where the message's status, stage timestamps, batch counters and
rollups follow from its event set under row locks (msglog/rules/statuses.py decides).

A report whose message is unknown is kept as an **orphan** with its reason (the webhook
still answered 200, so the provider stops retrying). A callback can outrun our own commit
of the provider's message id; :func:`adopt_orphans`, run before every batch, puts orphans
whose message has appeared since back to pending, so they are applied then.
Reports that carry nothing to apply (an unknown status word, an inbound SMS that is no
keyword) are kept as ``ignored`` with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_scopes import scopes_disabled

from companies.models import Company
from msglog.models import HAS_PROVIDER_ID, InboundReport, Message, StatusEvent, Suppression
from msglog.rules.kinds import Channel
from msglog.rules.statuses import Status
from msglog.services import events, queue, suppressions
from msglog.services.bulk_writes import update_fields
from msglog.services.prepared import server_bound_cursor

log = logging.getLogger(__name__)

#: Reports one worker applies in one transaction.
APPLY_BATCH = int(getattr(settings, "REPORTS_APPLY_BATCH", 1000))
#: How long an orphan waits for its message to appear before it is left alone.
ORPHAN_PATIENCE = timedelta(days=2)
#: Applied status reports are kept this long (their content lives on in StatusEvents);
#: inbound SMS reports are kept until erased, so an old signed START replayed later is
#: still recognized as stored.
KEEP_APPLIED = timedelta(days=int(getattr(settings, "REPORTS_KEEP_DAYS", 7)))

#: Twilio's opt-out error: the recipient replied STOP to our sender.
TWILIO_OPT_OUT = "21610"


@dataclass
class Incoming:
    """One authenticated report, in our words, before it is stored."""

    source: str  # a StatusEvent.Source value
    event: str  # the provider's own word
    status: str = ""  # a Status value, or "" for a report that does not move the status
    kind: str = InboundReport.Kind.STATUS
    provider_message_id: str = ""
    public_id: str = ""
    address: str = ""
    provider_time: datetime | None = None  # when the provider says it happened
    error_code: str = ""
    error_message: str = ""
    provider_event_id: str = ""  # only where the provider keeps it across retries
    payload: dict = field(default_factory=dict)
    reason: str = ""  # set: the report is stored as ignored, with this reason
    key_extra: tuple = ()  # more content that tells two reports apart

    def dedupe_key(self) -> str:
        """The report's content: the same report, delivered again, gives the same key."""
        return events.dedupe_key(
            self.source,
            self.kind,
            self.provider_message_id or self.public_id,
            self.event,
            self.status,
            self.provider_time.isoformat() if self.provider_time else "",
            self.error_code,
            self.provider_event_id,
            *self.key_extra,
        )

    def row(self, received_at: datetime) -> dict:
        """The report's values as stored, by column: its keys are the INSERT's columns."""
        return {
            "source": self.source,
            "kind": self.kind,
            "state": InboundReport.State.IGNORED if self.reason else InboundReport.State.PENDING,
            "reason": self.reason[:300],
            "provider_message_id": self.provider_message_id[:100],
            "public_id": self.public_id[:24],
            "address": self.address[:254],
            "status": self.status,
            "event": self.event[:40],
            "occurred_at": self.provider_time or received_at,
            "received_at": received_at,
            "error_code": self.error_code[:40],
            "error_message": self.error_message,
            "provider_event_id": self.provider_event_id[:100],
            "dedupe_key": self.dedupe_key(),
            "payload": _PAYLOAD.get_db_prep_save(self.payload, connection),
        }


_PAYLOAD = InboundReport._meta.get_field("payload")


def store(incoming: Sequence[Incoming]) -> None:
    """Store reports durably (each once: one already stored is skipped) and have a worker
    apply them. Runs in the web process: one INSERT, in one round trip when the caller is
    in autocommit, and no lock on any message."""
    if not incoming:
        return
    now = timezone.now()
    rows = [item.row(now) for item in incoming]
    sql = _insert_sql(tuple(rows[0]), len(rows))
    with server_bound_cursor() as cursor:  # prepared once per connection: see prepared.py
        cursor.execute(sql, [value for row in rows for value in row.values()])
    if any(row["state"] == InboundReport.State.PENDING for row in rows):
        request_application()


@lru_cache(maxsize=16)
def _insert_sql(columns: tuple[str, ...], rows: int) -> str:
    """INSERT ... ON CONFLICT (dedupe_key) DO NOTHING of `rows` reports: one statement,
    without the transaction and savepoint round trips bulk_create adds (the webhook's
    answer waits for it), and the same text each time, so PostgreSQL can prepare it."""
    quote = connection.ops.quote_name
    by_name = {f.name: f for f in InboundReport._meta.concrete_fields}
    fields = [by_name[name] for name in columns]
    names = ", ".join(quote(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return (
        f"INSERT INTO {quote(InboundReport._meta.db_table)} ({names}) "  # noqa: S608
        f"VALUES {', '.join([one] * rows)} ON CONFLICT (dedupe_key) DO NOTHING"
    )


#: While this cache key lives, an application task is on its way or running: a burst of
#: webhooks publishes a task when none is, not one per request.
SCHEDULED_KEY = "msglog:reports:application-scheduled"


#: A web process asks at most this often (seconds); the task lingers longer than this
#: after the last report it saw, so a report stored in between is still applied by it.
ASK_EVERY = 0.2
LINGER = 1.0
#: How long a lingering run waits after a small batch (see apply_all): at most this
#: much later applied, in batches of hundreds instead of dozens.
GATHER = 0.25
_last_asked = 0.0


def request_application() -> None:
    """Have a worker apply stored reports soon (the webhook views call this after storing).

    The running task lingers LINGER seconds after the last pending report it saw, then
    releases the key and drains once more: a report stored meanwhile is never left
    waiting (and beat runs the task every few seconds anyway, should a task be lost)."""
    global _last_asked
    now = time.monotonic()
    if now - _last_asked < ASK_EVERY:
        return
    _last_asked = now
    if cache.add(SCHEDULED_KEY, 1, timeout=30):
        queue.publish_on_commit("msglog.tasks.apply_provider_reports")


# --- Applying ------------------------------------------------------------------------------


def apply_pending(limit: int = APPLY_BATCH) -> dict[str, int]:
    """Apply one batch of pending reports; returns counts by outcome ({} when none)."""
    with scopes_disabled(), transaction.atomic():
        reports = list(
            InboundReport.objects.select_for_update(skip_locked=True)
            .filter(state=InboundReport.State.PENDING)
            .order_by("id")[:limit]
        )
        if not reports:
            return {}
        return apply(reports)


def apply_all(limit: int = APPLY_BATCH, linger: float = 0.0) -> dict[str, int]:
    """Adopt orphans whose message appeared, then apply batches until none has been
    pending for `linger` seconds (the task lingers: see request_application).

    A lingering run takes reports as they arrive, so after a small batch (under a quarter
    of `limit`) it waits GATHER seconds for more: a batch's dozen statements cost about
    as much at 20 reports as at 500, so a steady stream applied in trickles would cost
    twice the CPU per report.
    """
    totals: dict[str, int] = {}
    adopted = adopt_orphans()
    if adopted:
        totals["adopted"] = adopted
    gather = GATHER if linger else 0.0

    def drain(wait: float) -> bool:
        found = False
        while counts := apply_pending(limit):
            found = True
            for outcome, n in counts.items():
                totals[outcome] = totals.get(outcome, 0) + n
            if wait and sum(counts.values()) < limit // 4:
                time.sleep(wait)
        return found

    quiet_since = time.monotonic()
    while True:
        if drain(gather):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= linger:
            break
        else:
            time.sleep(0.05)
    cache.delete(SCHEDULED_KEY)
    drain(0.0)  # the key is gone and another task may start: finish without waiting
    return totals


def apply(reports: list[InboundReport]) -> dict[str, int]:
    """Apply these (locked, pending) reports to their messages and mark each one."""
    now = timezone.now()
    status_reports = [r for r in reports if r.kind == InboundReport.Kind.STATUS]
    messages = messages_for(status_reports)
    new_events: list[StatusEvent] = []
    matched: list[tuple[InboundReport, Message]] = []
    for report in status_reports:
        message = messages.get(("p", report.provider_message_id)) or messages.get(
            ("o", report.public_id)
        )
        if message is None:
            report.state = InboundReport.State.ORPHAN
            report.reason = "No message with this id yet."
            continue
        report.state = InboundReport.State.APPLIED
        report.company_id, report.message_id, report.applied_at = (
            message.company_id,
            message.pk,
            now,
        )
        report.address = report.address or message.to_address
        matched.append((report, message))
        new_events.append(event_of(report, message))
    events.record_events(new_events)
    for report, message in matched:
        consequences(report, message, now)
    for report in reports:
        if report.kind == InboundReport.Kind.INBOUND:
            apply_inbound(report, now)

    fields = ["state", "reason", "company_id", "message_id", "applied_at", "address"]
    update_fields(reports, fields)
    counts: dict[str, int] = {}
    for report in reports:
        counts[report.state] = counts.get(report.state, 0) + 1
    return counts


def messages_for(reports: Iterable[InboundReport]) -> dict[tuple[str, str], Message]:
    """The reports' messages, by ("p", provider message id) and ("o", our public id)."""
    provider_ids = sorted({r.provider_message_id for r in reports if r.provider_message_id})
    public_ids = sorted({r.public_id for r in reports if r.public_id})
    if not provider_ids and not public_ids:
        return {}
    found: dict[tuple[str, str], Message] = {}
    for message in messages_with_ids(provider_ids, public_ids):
        if message.provider_message_id:
            found[("p", message.provider_message_id)] = message
        found[("o", message.public_id)] = message
    return found


def messages_with_ids(provider_ids: Sequence[str], public_ids: Sequence[str]) -> QuerySet:
    """The messages with any of these provider message ids or public ids (at least one
    given), with the fields apply() reads. The provider ids come with the index's
    condition (HAS_PROVIDER_ID), so a list of any length is looked up in msg_provider_id."""
    wanted = Q()
    if provider_ids:
        wanted |= Q(provider_message_id__in=provider_ids) & HAS_PROVIDER_ID
    if public_ids:
        wanted |= Q(public_id__in=public_ids)
    fields = (
        "id", "company_id", "public_id", "provider_message_id", "provider", "channel",
        "to_address",
    )  # fmt: skip
    return Message.objects.filter(wanted).order_by().only(*fields)


def event_of(report: InboundReport, message: Message) -> StatusEvent:
    return events.new_event(
        message,
        report.status,
        source=report.source,
        occurred_at=report.occurred_at,
        received_at=report.received_at,
        event=report.event,
        error_code=report.error_code,
        error_message=report.error_message,
        provider_event_id=report.provider_event_id,
        raw_payload=report.payload,
        key_parts=(report.dedupe_key,),
    )


def consequences(report: InboundReport, message: Message, now: datetime) -> None:
    """What a report means for the suppression list (the table in services/suppressions)."""
    reason = None
    if message.channel == Channel.SMS:
        if report.error_code == TWILIO_OPT_OUT:
            reason = Suppression.Reason.SMS_STOP
    elif report.status == Status.BOUNCED:
        reason = Suppression.Reason.HARD_BOUNCE
    elif report.status == Status.COMPLAINED:
        reason = Suppression.Reason.COMPLAINT
    elif report.event == "unsubscribed":
        reason = Suppression.Reason.UNSUBSCRIBE
    elif report.event == suppressions.SOFT_BOUNCE_EVENT and suppressions.soft_bounced_too_often(
        message.company_id, message.to_address, now
    ):
        reason = Suppression.Reason.REPEATED_SOFT_BOUNCE
    if reason:
        suppressions.add(
            message.company_id,
            message.channel,
            message.to_address,
            reason,
            message=message,
            note=f"{report.source}: {report.event} {report.error_code}".strip(),
        )


# --- Inbound SMS ---------------------------------------------------------------------------

#: Twilio's default opt-out and opt-in keywords (the whole message, any case).
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS = frozenset({"START", "UNSTOP", "YES"})


def keyword(body: str) -> str:
    """ "stop", "start" or "" for an inbound SMS text."""
    word = " ".join(body.strip().strip(".!").upper().split())
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return ""


def companies_for_inbound(sender: str, our_number: str) -> list[int]:
    """The companies an inbound SMS from `sender` to `our_number` speaks to.

    A company with its own SMS sender number gets the replies to that number. Replies to
    the platform's shared number go to every company without a number of its own that
    has texted this person: Twilio's opt-out applies to the whole sending number.
    """

    own = list(Company.objects.filter(sms_sender=our_number).values_list("pk", flat=True))
    if own:
        return own
    sharing = Company.objects.filter(sms_sender="").values("pk")
    return list(
        Message.objects.filter(company_id__in=sharing, channel=Channel.SMS, to_address=sender)
        .order_by()
        .values_list("company_id", flat=True)
        .distinct()
    )


def apply_inbound(report: InboundReport, now: datetime) -> None:
    """STOP adds an SMS opt-out for the companies the sender texted; START lifts it."""
    word = report.event
    companies = companies_for_inbound(report.address, report.payload.get("To", ""))
    report.applied_at = now
    if not companies:
        report.state = InboundReport.State.ORPHAN
        report.reason = "No company has texted this number."
        return
    report.state = InboundReport.State.APPLIED
    report.company_id = companies[0]
    for company_id in companies:
        if word == "stop":
            suppressions.add(
                company_id,
                Channel.SMS,
                report.address,
                Suppression.Reason.SMS_STOP,
                note=f"Replied {report.payload.get('Body', '').strip()[:40]!r}",
            )
        elif word == "start":
            suppressions.lift_sms_stop(company_id, report.address)


# --- Orphans and housekeeping --------------------------------------------------------------


def adopt_orphans(now: datetime | None = None) -> int:
    """Put orphans whose message now exists back to pending; returns how many."""
    now = now or timezone.now()
    with scopes_disabled():
        orphans = InboundReport.objects.filter(
            state=InboundReport.State.ORPHAN,
            kind=InboundReport.Kind.STATUS,
            received_at__gte=now - ORPHAN_PATIENCE,
        )
        by_provider_id = orphans.exclude(provider_message_id="").filter(
            provider_message_id__in=Message.objects.filter(HAS_PROVIDER_ID)
            .filter(
                provider_message_id__in=orphans.exclude(provider_message_id="").values(
                    "provider_message_id"
                )
            )
            .values("provider_message_id")
        )
        by_public_id = orphans.exclude(public_id="").filter(
            public_id__in=Message.objects.filter(
                public_id__in=orphans.exclude(public_id="").values("public_id")
            ).values("public_id")
        )
        adopted = 0
        for found in (by_provider_id, by_public_id):
            adopted += InboundReport.objects.filter(
                pk__in=list(found.values_list("pk", flat=True)[:10000])
            ).update(state=InboundReport.State.PENDING, reason="")
    return adopted


def prune(now: datetime | None = None) -> int:
    """Delete applied and ignored status reports older than KEEP_APPLIED, and orphans
    past their patience plus that; returns how many."""
    now = now or timezone.now()
    cutoff = now - KEEP_APPLIED
    old = InboundReport.objects.filter(kind=InboundReport.Kind.STATUS, received_at__lt=cutoff)
    done = old.filter(state__in=[InboundReport.State.APPLIED, InboundReport.State.IGNORED])
    stale_orphans = old.filter(
        state=InboundReport.State.ORPHAN, received_at__lt=cutoff - ORPHAN_PATIENCE
    )
    deleted = 0
    for queryset in (done, stale_orphans):
        ids = list(queryset.values_list("pk", flat=True)[:50000])
        deleted += InboundReport.objects.filter(pk__in=ids).delete()[0]
    return deleted


def erase_addresses(company_id: int, addresses: frozenset[str]) -> int:
    """Delete the stored reports about erased addresses: the company's, and
    those never matched to any company (orphans carry the address and nothing else)."""
    with scopes_disabled():
        return (
            InboundReport.objects.filter(address__in=addresses)
            .filter(Q(company_id=company_id) | Q(company_id__isnull=True))
            .delete()[0]
        )
