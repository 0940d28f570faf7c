"""Twilio's webhooks: message status callbacks and inbound SMS.

Both are form posts signed in ``X-Twilio-Signature`` with the account's auth token over
the URL Twilio called and every POST parameter. The URL is rebuilt from the one
canonical ``PUBLIC_BASE_URL`` and the request's path and query, never from the Host or
X-Forwarded-* headers: a TLS-terminating proxy does not break the check and a forged
X-Forwarded-Host does not help. A bad or missing signature answers 403 and stores
nothing; a body over 32 KB answers 413 unread; a post without a MessageSid
answers 400.

A status callback carries MessageSid, MessageStatus (SmsStatus in older callbacks), and
ErrorCode, RawDlrDoneDate (the carrier's "done" time, YYMMDDhhmm UTC, on delivered and
undelivered), NumSegments and Price where Twilio has them. Its status is read through
the provider's one table (msglog/providers/twilio/client.py STATUS_MAP); the provider time is
RawDlrDoneDate when given, else the time we received it. Its dedupe key is the SID, the
status, the error code and RawDlrDoneDate: Twilio's retries of one callback carry
exactly these, so they are stored once. An unknown status word is stored as ignored,
with the reason, and answered 200.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator, get_signature_algorithm

from msglog.models import InboundReport, StatusEvent
from msglog.providers.twilio.client import STATUS_MAP, map_status
from msglog.providers.webhook_limits import TWILIO_MAX_BYTES, body_too_large
from msglog.services import inbound_reports

#: What Twilio gets back from the inbound webhook: an empty TwiML answer (no reply SMS;
#: Twilio itself answers STOP and START with its own confirmation texts).
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def signed_by_twilio(request: HttpRequest) -> bool:
    """Whether the request carries a valid Twilio signature for our canonical URL."""
    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = settings.PUBLIC_BASE_URL + request.get_full_path()
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    return RequestValidator(token).validate(url, request.POST, signature, algorithm=algorithm)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """The 4xx answer for a request that must not be stored, or None."""
    if body_too_large(request, TWILIO_MAX_BYTES):
        return HttpResponse("Too large.", status=413, content_type="text/plain")
    if request.content_type != "application/x-www-form-urlencoded":
        return HttpResponse("Expected a form post.", status=415, content_type="text/plain")
    if not signed_by_twilio(request):
        return HttpResponse("Bad signature.", status=403, content_type="text/plain")
    if not request.POST.get("MessageSid", request.POST.get("SmsSid", "")).strip():
        return HttpResponse("No MessageSid.", status=400, content_type="text/plain")
    return None


def dlr_time(value: str) -> datetime | None:
    """RawDlrDoneDate ("YYMMDDhhmm", UTC; some carriers add seconds) as a datetime."""
    value = (value or "").strip()
    fmt = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(value))
    if fmt is None or not value.isdigit():
        return None
    try:
        return datetime.strptime(value, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


def status_report(form) -> inbound_reports.Incoming:
    """A status callback's form as an Incoming report."""
    sid = form.get("MessageSid") or form.get("SmsSid", "")
    word = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    payload = {k: form.get(k) for k in form if k != "AccountSid"}  # the platform's, not theirs
    error_code = (form.get("ErrorCode") or "").strip()
    if error_code == "0":
        error_code = ""
    raw_time = form.get("RawDlrDoneDate", "")
    incoming = inbound_reports.Incoming(
        source=StatusEvent.Source.TWILIO,
        event=word,
        status=map_status(word),
        provider_message_id=sid.strip(),
        address=(form.get("To") or "").strip(),
        provider_time=dlr_time(raw_time),
        error_code=error_code,
        error_message=(form.get("ErrorMessage") or "").strip(),
        payload=payload,
        key_extra=(raw_time,),
    )
    if word not in STATUS_MAP:
        incoming.reason = f"Unknown Twilio status {word[:40]!r}."
    elif not incoming.status and not error_code:
        incoming.reason = f"Twilio status {word!r} says nothing about a message we sent."
    return incoming


@csrf_exempt
@require_POST
def status_callback(request: HttpRequest) -> HttpResponse:
    """POST /webhooks/twilio/status/: store the report, answer at once."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    inbound_reports.store([status_report(request.POST)])
    return HttpResponse(status=204)


def inbound_report(form) -> inbound_reports.Incoming:
    body = form.get("Body", "")
    word = inbound_reports.keyword(body)
    payload = {k: form.get(k) for k in form if k != "AccountSid"}
    return inbound_reports.Incoming(
        source=StatusEvent.Source.TWILIO,
        kind=InboundReport.Kind.INBOUND,
        event=word or "inbound",
        provider_message_id=(form.get("MessageSid") or form.get("SmsSid", "")).strip(),
        address=(form.get("From") or "").strip(),
        payload=payload,
        reason="" if word else "Not an opt-out or opt-in keyword.",
    )


@csrf_exempt
@require_POST
def inbound_sms(request: HttpRequest) -> HttpResponse:
    """POST /webhooks/twilio/inbound/: STOP and START keywords, stored for a worker."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    inbound_reports.store([inbound_report(request.POST)])
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
