"""The status vocabulary and the one rule that derives a message's status.

Every report about a message is a StatusEvent. A message's current status, reason,
error and stage timestamps are a pure function of the *set* of its events
(:func:`derive`): the order and the number of times reports arrive change nothing.

The precedence table, lowest to highest, and why:

=====  ====================  ==============================================================
rank   status                why it sits here
=====  ====================  ==============================================================
0      scheduled             waiting for its due time; being queued supersedes it
1      queued                accepted, waiting for a worker
2-3    channel_disabled,     never-sent outcomes decided before any provider call; any
       insufficient_credits  sign that a provider was called after all (sending and up)
                             outranks them, because the record must say what happened
4      sending               a worker won the claim and is calling the provider
5      canceled              its batch was stopped: recorded only by the stop (for a message
                             no worker claimed) or by the worker that claimed it and saw the
                             stop before calling the provider, so it outranks `sending`
6-7    invalid_recipient,    decided by our checks before any call, or by the provider
       suppressed            refusing the message (Twilio 21211/21614, 21610 STOP): a
                             refusal comes after `sending` and is the final word on it,
                             since nothing was sent. It outranks `canceled` too: if both
                             exist, a stop raced a worker that called the provider anyway,
                             and the refusal is what really happened (and keeps a restart
                             from retrying a hopeless address); any sign of sending (sent
                             and up) still outranks it
8      sent                  the provider accepted it; intermediate
9      failed                the send failed (provider error, retries exhausted)
10     undelivered           the carrier reported non-delivery
11     delivered             positive proof of delivery outranks a failure report: for a
                             multi-segment SMS, one segment may fail and another succeed
                             (the failed segment's error stays visible, see below)
12     bounced               an ESP's "delivered" means the receiving server took it; a
                             later hard bounce is that server's final word
13     opened                engagement is proof the recipient has the message, so it
14     clicked               outranks every failure report
15     complained            the recipient marked it as spam: the strongest final word
=====  ====================  ==============================================================

Events that carry no status (a soft bounce, a transient provider error that will be
retried) appear in the timeline and never move the status.

The error shown on a message is the error of its highest-ranked event that carries one,
so a delivered multi-segment SMS keeps its failed segment's error code visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    UNDELIVERED = "undelivered", "Undelivered"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"
    INVALID_RECIPIENT = "invalid_recipient", "Invalid recipient"
    INSUFFICIENT_CREDITS = "insufficient_credits", "Insufficient credits"
    CHANNEL_DISABLED = "channel_disabled", "Channel disabled"
    SUPPRESSED = "suppressed", "Suppressed"
    CANCELED = "canceled", "Canceled"
    COMPLAINED = "complained", "Complained"


# The words the products our users come from use for each status, so a user's own
# word finds ours (search, filter) and is shown beside it.
ALSO_CALLED: dict[Status, tuple[str, ...]] = {
    Status.QUEUED: ("Pending", "Enqueued"),
    Status.SCHEDULED: ("Delayed",),
    Status.SENDING: ("In Progress", "Sending", "Routed"),
    Status.SENT: ("Sent",),
    Status.DELIVERED: ("Delivered", "Success"),
    Status.OPENED: ("Opened", "Read"),
    Status.CLICKED: ("Clicked",),
    Status.UNDELIVERED: ("Undelivered", "Undeliverable"),
    Status.BOUNCED: ("Bounced",),
    Status.FAILED: ("Failed",),
    Status.INVALID_RECIPIENT: ("InvalidPhoneNumber",),
    Status.INSUFFICIENT_CREDITS: ("Insufficient SMS Credits",),
    Status.CHANNEL_DISABLED: ("SMS/Email Disabled for Company",),
    Status.SUPPRESSED: ("Dropped", "Unsubscribed"),
    Status.CANCELED: ("Canceled",),
    Status.COMPLAINED: ("Marked as spam",),
}

MEANING: dict[Status, str] = {
    Status.QUEUED: "Accepted, waiting for a worker.",
    Status.SCHEDULED: "To be sent at a later time.",
    Status.SENDING: "A worker is handing it to the provider.",
    Status.SENT: "The provider accepted it; no delivery report yet.",
    Status.DELIVERED: "The provider or carrier confirmed delivery.",
    Status.OPENED: "The recipient opened it.",
    Status.CLICKED: "The recipient clicked a tracked link.",
    Status.UNDELIVERED: "The carrier or provider could not deliver it.",
    Status.BOUNCED: "The recipient's server rejected it.",
    Status.FAILED: "The send failed.",
    Status.INVALID_RECIPIENT: "The phone number or email address is not valid. Never sent.",
    Status.INSUFFICIENT_CREDITS: "The company had too few SMS credits. Never sent.",
    Status.CHANNEL_DISABLED: "This channel is disabled for the company. Never sent.",
    Status.SUPPRESSED: "The address is on the suppression list. Never sent.",
    Status.CANCELED: "The batch was stopped before this one was sent. Never sent.",
    Status.COMPLAINED: "The recipient marked it as spam.",
}

INTERMEDIATE = frozenset({Status.QUEUED, Status.SCHEDULED, Status.SENDING, Status.SENT})
NEVER_SENT = frozenset(
    {
        Status.INVALID_RECIPIENT,
        Status.INSUFFICIENT_CREDITS,
        Status.CHANNEL_DISABLED,
        Status.SUPPRESSED,
        Status.CANCELED,
    }
)
ENGAGEMENT = frozenset({Status.OPENED, Status.CLICKED, Status.COMPLAINED})
TERMINAL = frozenset(
    {Status.DELIVERED, Status.UNDELIVERED, Status.BOUNCED, Status.FAILED} | NEVER_SENT
)
# What the UI calls "Failed" (tab, filter, stats).
FAILED_GROUP = frozenset(
    {
        Status.UNDELIVERED,
        Status.BOUNCED,
        Status.FAILED,
        Status.INVALID_RECIPIENT,
        Status.INSUFFICIENT_CREDITS,
        Status.CHANNEL_DISABLED,
        Status.SUPPRESSED,
    }
)
# Reached the recipient: counts as delivered in delivery rates.
DELIVERED_GROUP = frozenset({Status.DELIVERED} | ENGAGEMENT)
# Failures a restart may try again; an invalid or suppressed address would fail the same way.
RETRYABLE = FAILED_GROUP - {Status.INVALID_RECIPIENT, Status.SUPPRESSED}
# Waiting for a worker or the provider: the ones a stopped batch cancels are QUEUED/SCHEDULED.
PENDING = frozenset({Status.QUEUED, Status.SCHEDULED})

PRECEDENCE: dict[Status, int] = {
    status: rank
    for rank, status in enumerate(
        [
            Status.SCHEDULED,
            Status.QUEUED,
            Status.CHANNEL_DISABLED,
            Status.INSUFFICIENT_CREDITS,
            Status.SENDING,
            # Above sending: only a stop (before any claim) or the worker that claimed the
            # message and did not hand it over records it.
            Status.CANCELED,
            # A refusal (ours or the provider's) is the final word on a claimed message, even
            # one a stop raced: the provider was called and said no.
            Status.INVALID_RECIPIENT,
            Status.SUPPRESSED,
            Status.SENT,
            Status.FAILED,
            Status.UNDELIVERED,
            Status.DELIVERED,
            Status.BOUNCED,
            Status.OPENED,
            Status.CLICKED,
            Status.COMPLAINED,
        ]
    )
}
assert set(PRECEDENCE) == set(Status), "every status needs a place in the precedence table"

# Which event statuses stamp which stage timestamp (the earliest such event wins).
STAGE_OF: dict[Status, str] = {
    Status.SENT: "sent_at",
    Status.DELIVERED: "delivered_at",
    Status.OPENED: "opened_at",
    Status.CLICKED: "clicked_at",
    **{status: "failed_at" for status in FAILED_GROUP},
}
STAGE_FIELDS = ("sent_at", "delivered_at", "opened_at", "clicked_at", "failed_at")
# Every message field derive() decides.
DERIVED_FIELDS = ("status", "status_reason", "error_code", "error_message", *STAGE_FIELDS)


def matching_statuses(word: str) -> set[Status]:
    """Statuses a user's word names: our value, our label, or another product's word."""
    needle = word.strip().lower().replace("_", " ")
    if not needle:
        return set()
    found = set()
    for status in Status:
        names = [status.value.replace("_", " "), str(status.label), *ALSO_CALLED[status]]
        if any(needle == name.lower() or needle in name.lower() for name in names):
            found.add(status)
    return found


def display_words(status: str) -> str:
    """'Suppressed (Dropped, Unsubscribed)': our label with the other products' words."""
    status = Status(status)
    others = [w for w in ALSO_CALLED[status] if w.lower() != str(status.label).lower()]
    return f"{status.label} ({', '.join(others)})" if others else str(status.label)


@dataclass(frozen=True)
class EventFact:
    """What :func:`derive` needs of one StatusEvent."""

    dedupe_key: str
    status: str  # a Status value, or "" for events that do not move the status
    occurred_at: datetime
    error_code: str = ""
    error_message: str = ""
    reason: str = ""

    def sort_key(self) -> tuple:
        rank = PRECEDENCE.get(Status(self.status), -1) if self.status else -1
        return (
            rank,
            self.occurred_at,
            self.dedupe_key,
            self.error_code,
            self.error_message,
            self.reason,
        )


@dataclass(frozen=True)
class Derived:
    """A message's status fields as its events determine them."""

    status: str
    status_reason: str = ""
    error_code: str = ""
    error_message: str = ""
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    failed_at: datetime | None = None

    def as_fields(self) -> dict:
        return {name: getattr(self, name) for name in DERIVED_FIELDS}


def derive(events: Iterable[EventFact], initial: str = Status.QUEUED) -> Derived:
    """The status, reason, error and stage timestamps that a set of events determines.

    A pure function of the set: events with the same dedupe key count once, and every
    choice is a maximum or minimum over a total order, never "the last one seen".
    """
    unique: dict[str, EventFact] = {}
    for event in events:
        kept = unique.get(event.dedupe_key)
        # Two reports under one key should be identical; if not, keep one deterministically.
        if kept is None or event.sort_key() > kept.sort_key():
            unique[event.dedupe_key] = event
    status_events = [e for e in unique.values() if e.status]
    if not status_events:
        return Derived(status=initial)

    winner = max(status_events, key=EventFact.sort_key)
    with_error = [e for e in unique.values() if e.error_code or e.error_message]
    error = max(with_error, key=EventFact.sort_key) if with_error else None

    stages: dict[str, datetime] = {}
    for event in status_events:
        stage = STAGE_OF.get(Status(event.status))
        if stage and (stage not in stages or event.occurred_at < stages[stage]):
            stages[stage] = event.occurred_at

    return Derived(
        status=winner.status,
        status_reason=winner.reason,
        error_code=error.error_code if error else "",
        error_message=error.error_message if error else "",
        **stages,
    )
