"""Email tracking from ESPs, through django-anymail's tracking webhooks.

anymail's views authenticate each post: its WEBHOOK_SECRET basic auth (several secrets
may be listed, for rotation; see settings), plus the ESP's own signature where anymail
checks one (Mailgun's HMAC with MAILGUN_WEBHOOK_SIGNING_KEY; SendGrid, Postmark and
Amazon SES rely on the basic auth). A failure answers 400 and nothing is stored. Amazon
SES arrives over SNS: anymail checks the SNS headers against the body but does not
verify SNS's certificate signature (that needs the certificate fetched from AWS), so
the basic auth in the subscription URL is what authenticates it.

Every view is wrapped (:func:`guarded`): a body over WEBHOOK_MAX_BYTES answers 413 unread
and a body anymail cannot parse answers 400, never a 500. Each normalized event reaches
:func:`on_tracking` through anymail's `tracking` signal and is stored as a report; a
worker applies it (msglog/services/inbound_reports.py).

anymail's event types in our vocabulary:

==============  ==============================  =============================================
anymail         our status                      and
==============  ==============================  =============================================
queued, sent    sent                            the ESP has it
delivered       delivered
autoresponded   delivered                       an automatic reply proves it arrived
opened          opened
clicked         clicked
complained      complained                      suppression (complaint), contact flagged
bounced         bounced                         suppression (hard bounce), contact flagged —
                                                unless the ESP says the bounce was soft
                                                (below): then a soft bounce
deferred        — (timeline event soft_bounce)  soft bounces of one address on
                                                SOFT_BOUNCE_LIMIT messages within
                                                SOFT_BOUNCE_WINDOW_DAYS: suppression
rejected        by reason: invalid →            the ESP refused to send it
                invalid_recipient, bounced →
                bounced, unsubscribed / spam /
                blocked → suppressed, else
                failed
failed          failed
unsubscribed    — (timeline event)              suppression (unsubscribe), contact flagged
anything else   nothing: stored as ignored      (subscribed, inbound, unknown)
==============  ==============================  =============================================

Soft bounces that anymail reports as "bounced": Postmark's Type SoftBounce, Transient
and DnsError; Amazon SES's bounceType Transient; Mailgun's severity temporary; SendGrid's
bounce type "blocked".

The event is matched to its message by the ESP's message id, or by our public id in
the metadata every message carries (``message_log_id``). Its dedupe key is the ESP,
the message id, the event type, its time, the recipient, the clicked URL and the ESP's
event id where anymail gives one (SendGrid's sg_event_id, SES's SNS MessageId, Mailgun's
event id, all kept across retries).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from anymail.exceptions import AnymailError
from anymail.signals import AnymailTrackingEvent, EventType, tracking
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from msglog.models import StatusEvent
from msglog.providers.anymail.client import STATUS_BY_REASON
from msglog.providers.webhook_limits import body_too_large
from msglog.rules.statuses import Status
from msglog.services import inbound_reports
from msglog.services.suppressions import SOFT_BOUNCE_EVENT

STATUS_OF_EVENT: dict[str, str] = {
    EventType.QUEUED: Status.SENT,
    EventType.SENT: Status.SENT,
    EventType.DELIVERED: Status.DELIVERED,
    EventType.AUTORESPONDED: Status.DELIVERED,
    EventType.OPENED: Status.OPENED,
    EventType.CLICKED: Status.CLICKED,
    EventType.COMPLAINED: Status.COMPLAINED,
    EventType.BOUNCED: Status.BOUNCED,
    EventType.FAILED: Status.FAILED,
    EventType.DEFERRED: "",
    EventType.UNSUBSCRIBED: "",
}
SOFT_POSTMARK_TYPES = frozenset({"SoftBounce", "Transient", "DnsError"})


def jsonable(value: Any) -> Any:
    """The ESP's raw event as JSON (a form post's QueryDict as lists, anything else as text)."""
    if hasattr(value, "lists"):
        value = {k: v[0] if len(v) == 1 else v for k, v in value.lists()}
    return json.loads(json.dumps(value, default=str))


def is_soft_bounce(event: AnymailTrackingEvent) -> bool:
    """Whether a "bounced" event is, by the ESP's own detail, temporary."""
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    if raw.get("Type") in SOFT_POSTMARK_TYPES:
        return True
    if (raw.get("bounce") or {}).get("bounceType") == "Transient":
        return True
    if (raw.get("event-data") or {}).get("severity") == "temporary":
        return True
    return raw.get("event") == "bounce" and raw.get("type") == "blocked"


def tracking_report(event: AnymailTrackingEvent, esp_name: str) -> inbound_reports.Incoming:
    """One anymail tracking event as an Incoming report."""
    event_type = event.event_type or EventType.UNKNOWN
    word = event_type
    status: str  # a Status, or "" for a report that does not move it
    if event_type == EventType.REJECTED:
        status = STATUS_BY_REASON.get(event.reject_reason or "", Status.FAILED)
    elif event_type == EventType.DEFERRED or (
        event_type == EventType.BOUNCED and is_soft_bounce(event)
    ):
        status, word = "", SOFT_BOUNCE_EVENT
    else:
        status = STATUS_OF_EVENT.get(event_type, "")
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    public_id = str(metadata.get("message_log_id") or "")
    description = event.description or event.mta_response or ""
    incoming = inbound_reports.Incoming(
        source=StatusEvent.Source.ANYMAIL,
        event=word,
        status=status,
        provider_message_id=str(event.message_id or ""),
        public_id=public_id,
        address=event.recipient or "",
        provider_time=event.timestamp,
        error_code=(event.reject_reason or "") if status in FAILURE_STATUSES else "",
        error_message=description if status in FAILURE_STATUSES or not status else "",
        provider_event_id=str(event.event_id or ""),
        payload={
            "esp": esp_name,
            "event_type": event_type,
            "reject_reason": event.reject_reason,
            "click_url": event.click_url,
            "esp_event": jsonable(event.esp_event),
        },
        key_extra=(esp_name, event.recipient or "", event.click_url or ""),
    )
    if event_type not in STATUS_OF_EVENT and event_type != EventType.REJECTED:
        incoming.reason = f"{esp_name} event {event_type!r} says nothing about a sent message."
    elif not incoming.provider_message_id and not public_id:
        incoming.reason = f"{esp_name} event without a message id."
    return incoming


FAILURE_STATUSES = frozenset(
    {Status.BOUNCED, Status.FAILED, Status.INVALID_RECIPIENT, Status.SUPPRESSED}
)


@receiver(tracking, dispatch_uid="msglog.providers.anymail.webhooks.on_tracking")
def on_tracking(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """anymail's `tracking` signal: store the event for a worker to apply."""
    inbound_reports.store([tracking_report(event, esp_name)])


def guarded(view: Callable) -> Callable:
    """anymail's view with our size limit, and a 400 for anything it cannot parse."""

    def guarded_view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if body_too_large(request):
            return HttpResponse("Too large.", status=413, content_type="text/plain")
        try:
            return view(request, *args, **kwargs)
        except (AnymailError, ValueError, KeyError, TypeError, AttributeError) as error:
            # AnymailWebhookValidationFailure (bad auth or signature) is an AnymailError
            # too: nothing was stored, since anymail validates before it signals.
            return HttpResponse(
                f"Rejected: {type(error).__name__}.", status=400, content_type="text/plain"
            )

    guarded_view.csrf_exempt = True  # type: ignore[attr-defined]
    guarded_view.__name__ = getattr(view, "__name__", "anymail_view")
    return guarded_view
