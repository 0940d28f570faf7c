"""Twilio SMS, through the official `twilio` SDK.

What this module decides, and why:

* **Credentials** come only from settings (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, read from
  the environment). The auth token never appears in what this module returns: exception
  texts and raw payloads are built from Twilio's answer field by field (never from the
  SDK's exception text, which names the request URI), and scrubbed once more anyway.
  The account SID is left out too: tenants see raw payloads, and it is the platform's.
* **Where requests go**: the real Twilio unless TWILIO_API_BASE_URL is set, in which case
  every request to https://*.twilio.com is sent to that base URL instead (tests run the
  SDK against a fake of the Messages API this way; nothing of the SDK is patched).
* **At most once**: the HTTP client never retries (requests' default adapters, no
  urllib3 retries), and every failure is sorted into one of three answers, by whether
  Twilio can have received the request:

  =========================================================  ==========================
  Twilio's answer, or the fault                               raised
  =========================================================  ==========================
  HTTP 429, or code 20429 (too many requests)                 TransientError (+ Retry-After)
  HTTP 503 (service unavailable)                              TransientError
  400 code 21211 (invalid To), 21614 (not a mobile number)    PermanentError invalid_recipient
  400 code 21610 (recipient replied STOP)                     PermanentError suppressed,
                                                              raw["opt_out"] = True
  any other 4xx (21408 region not enabled, 21606, 21617,      PermanentError failed, code as
  401/403 code 20003 wrong credentials, 404 ...)              Twilio gave it
  any other 5xx (500, 502, 504)                               AmbiguousError (maybe sent)
  2xx whose body has no SID, or cannot be parsed              AmbiguousError
  connection refused, DNS failure, connect timeout,           TransientError (nothing left
  proxy unreachable, TLS certificate rejected                 this machine)
  connection closed/reset before an answer, read timeout,     AmbiguousError (the request
  answer cut short, any other network fault                   may have been processed)
  =========================================================  ==========================

  What `requests` raises for each network fault (as observed with requests 2.34 and
  urllib3 2.8, and pinned by tests/tests/msglog/providers/twilio/test_client.py):

  - refused / unresolvable host: ``requests.ConnectionError`` whose ``args[0]`` is a
    ``urllib3.MaxRetryError`` with ``reason`` a ``NewConnectionError``;
  - connect timeout: ``requests.ConnectTimeout`` (reason ``ConnectTimeoutError``);
  - the server reads the request and closes the socket: ``requests.ConnectionError``
    whose ``args[0]`` is ``urllib3.ProtocolError('Connection aborted.',
    RemoteDisconnected(...))``; a reset (RST) gives the same with ``ConnectionResetError``;
  - no answer within the read timeout: ``requests.ReadTimeout``;
  - an answer cut off inside its body: ``requests.ChunkedEncodingError``
    (``ProtocolError('Connection broken: IncompleteRead(...)')``);
  - an answer cut off inside its headers: no exception at all, a 201 with an empty body
    (http.client takes the end of the stream for the end of the headers), so a create
    answer without a SID is ambiguous too;
  - a TLS handshake that stalls surfaces as ``ReadTimeout`` (urllib3 reports handshake
    timeouts as read timeouts): ambiguous, which is safe, and `lookup` settles it.

  Anything not positively known to have happened before the request was written is
  ambiguous: the send service then asks `lookup` instead of sending again.

* **21610 (STOP)**: the error's status is "suppressed", which is what the send service
  acts on (it adds an SMS-STOP suppression for that status); raw["opt_out"] = True says
  the same for anyone reading the raw payload.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions
from django.conf import settings
from django.utils import timezone
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from msglog.rules.kinds import Channel
from msglog.rules.provider_interface import (
    Accepted,
    AmbiguousError,
    NotFound,
    Outgoing,
    PermanentError,
    ProviderError,
    ProviderReport,
    TransientError,
)
from msglog.rules.statuses import Status

#: Twilio's message statuses in our vocabulary: the one table.
#: "" means the status says nothing about our outbound message and moves nothing.
STATUS_MAP: dict[str, str] = {
    # Twilio has the message and will send it: for us that is "the provider accepted it".
    "queued": Status.SENT,
    "accepted": Status.SENT,  # a Messaging Service took it and is choosing a sender
    "scheduled": Status.SENT,  # Twilio holds it for its send time: it has it all the same
    "sending": Status.SENT,
    "sent": Status.SENT,  # handed to the carrier; no delivery receipt yet
    "delivered": Status.DELIVERED,
    # Some segments delivered, some not: delivery outranks failure, like our own
    # multi-segment rule; the failed segment's error code stays visible.
    "partially_delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "read": Status.OPENED,  # WhatsApp/RCS read receipts only; SMS never reports it
    # A scheduled message canceled before Twilio sent it: it was never sent.
    "canceled": Status.CANCELED,
    # Inbound messages' statuses: never a status of a message we sent.
    "receiving": "",
    "received": "",
}

#: Error codes Twilio answers create() with that decide a specific never-sent status.
#: Every other code fails the message as "failed" (explained in msglog/rules/errors.py).
ERROR_STATUS: dict[int, str] = {
    21211: Status.INVALID_RECIPIENT,  # invalid 'To' number
    21614: Status.INVALID_RECIPIENT,  # 'To' is not a mobile number
    21610: Status.SUPPRESSED,  # the recipient replied STOP to our sender
}
OPT_OUT_CODES = frozenset({21610})
TOO_MANY_REQUESTS = 20429

#: A Messaging Service SID: what a company's SMS sender is when Twilio should pick the number.
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
#: (connect, read) seconds; overridable by settings.TWILIO_HTTP_TIMEOUT.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 30.0)
#: How many of a recipient's messages one lookup reads: Twilio's largest page. A lookup
#: that cannot see all of them (a next page exists) cannot prove a message is missing.
LOOKUP_PAGE_SIZE = 1000
#: Without the message's creation time (metadata["created_at"]), the window searched back
#: from now: reconciliation asks within 24 h of creation (sending.GIVE_UP_AFTER).
LOOKUP_WINDOW = timedelta(hours=26)
#: Our clock and Twilio's may differ: the search starts this much before the bound.
CLOCK_SKEW = timedelta(minutes=5)

# Fields of Twilio's Message resource that go into the raw payloads we return. Left out:
# account_sid, uri and subresource_uris (they carry the platform's account SID).
RAW_FIELDS = (
    "sid",
    "status",
    "direction",
    "to",
    "from",
    "messaging_service_sid",
    "body",
    "num_segments",
    "num_media",
    "error_code",
    "error_message",
    "price",
    "price_unit",
    "date_created",
    "date_sent",
    "date_updated",
    "api_version",
)
# Fields of Twilio's error JSON kept in raw ("status" is there as "http_status").
ERROR_FIELDS = ("code", "message", "more_info", "detail")
TWILIO_HOST_SUFFIX = ".twilio.com"


def map_status(twilio_status: str) -> str:
    """Our Status value for a Twilio message status; "" when it moves nothing (unknown)."""
    return STATUS_MAP.get((twilio_status or "").strip().lower(), "")


class TwilioNotConfigured(PermanentError):
    """Twilio is chosen as the SMS provider but its credentials or sender are missing."""


@dataclass(frozen=True)
class _Sender:
    """Who a message is sent from: a number (or alphanumeric ID), or a Messaging Service."""

    from_: str = ""
    messaging_service_sid: str = ""

    def create_kwargs(self) -> dict[str, str]:
        if self.from_:
            return {"from_": self.from_}
        return {"messaging_service_sid": self.messaging_service_sid}

    def list_kwargs(self) -> dict[str, str]:
        """Twilio can filter by a From number; a Messaging Service's is chosen by Twilio."""
        return {"from_": self.from_} if self.from_ else {}

    def sent(self, resource: Any) -> bool:
        """Whether a listed message went out from this sender."""
        if self.from_:
            return resource.from_ == self.from_
        return resource.messaging_service_sid == self.messaging_service_sid


class RoutedHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, with three changes:

    * requests to https://*.twilio.com go to `base_url` when it is set (a fake in tests,
      a recording proxy); the path and query are kept;
    * a (connect, read) timeout, which the SDK's constructor cannot take (it compares
      the timeout with 0);
    * it remembers, per thread, the last response, so an error's Retry-After header and
      Twilio's own error JSON can be read (the SDK's exceptions keep neither).
    """

    def __init__(self, base_url: str = "", timeout: tuple[float, float] = DEFAULT_TIMEOUT):
        # No max_retries: the SDK then mounts adapters that never retry, which is what
        # "handed over at most once" needs (a retried POST could send twice).
        super().__init__(pool_connections=True)
        self.timeout = timeout  # requests takes a tuple
        self.base_url = base_url.rstrip("/")
        self._local = threading.local()

    def route(self, url: str) -> str:
        if not self.base_url:
            return url
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host != "twilio.com" and not host.endswith(TWILIO_HOST_SUFFIX):
            return url
        base = urlsplit(self.base_url)
        path = base.path.rstrip("/") + parts.path
        return urlunsplit((base.scheme, base.netloc, path, parts.query, parts.fragment))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        self._local.last = None
        response = super().request(method, self.route(url), *args, **kwargs)
        self._local.last = response
        return response

    @property
    def last_response(self) -> Response | None:
        """The last response this thread received (None after a network fault)."""
        return getattr(self._local, "last", None)


class TwilioProvider:
    """Sends SMS with Twilio and answers what Twilio knows about a message."""

    name = "twilio"
    channels = frozenset({Channel.SMS.value})
    channel = Channel.SMS.value

    def __init__(self, channel: str = Channel.SMS.value) -> None:
        self.account_sid: str = settings.TWILIO_ACCOUNT_SID
        self._auth_token: str = settings.TWILIO_AUTH_TOKEN
        self.messaging_service_sid: str = settings.TWILIO_MESSAGING_SERVICE_SID
        self.from_number: str = settings.TWILIO_FROM_NUMBER
        self.http_client = RoutedHttpClient(
            base_url=settings.TWILIO_API_BASE_URL, timeout=_timeout_setting()
        )
        self._client: Client | None = None
        if self.account_sid and self._auth_token:
            # Credentials passed explicitly: the SDK then never reads them from os.environ.
            self._client = Client(
                username=self.account_sid,
                password=self._auth_token,
                account_sid=self.account_sid,
                http_client=self.http_client,
            )

    def __repr__(self) -> str:  # no credential, even in a debugger or a traceback
        return "<TwilioProvider>"

    # --- send -------------------------------------------------------------------------

    def send(self, outgoing: Outgoing) -> Accepted:
        """Create the message at Twilio once; raise a ProviderError subclass otherwise."""
        client = self._require_client()
        sender = self._sender(outgoing)
        # The error is raised outside the `except` blocks so it carries no __context__:
        # the SDK's and requests' exceptions hold the request, Authorization header included.
        failure: ProviderError | None = None
        try:
            resource = client.messages.create(
                to=outgoing.to,
                body=outgoing.text,
                status_callback=outgoing.status_callback_url or None,
                **sender.create_kwargs(),
            )
        except TwilioException as error:
            failure = self._from_twilio_error(error)
        except requests.RequestException as error:
            failure = _from_network_fault(error)
        except ValueError as error:  # a 2xx answer that is not JSON: it got there
            failure = AmbiguousError(
                "Twilio's answer could not be read; the message may have been sent.",
                code="bad_answer",
                raw={"error": type(error).__name__},
            )
        if failure is not None:
            raise failure

        raw = self._raw(resource)
        if not resource.sid:
            raise AmbiguousError(
                "Twilio answered without a message id; the message may have been sent.",
                code="no_sid",
                raw=raw,
            )
        status = map_status(resource.status or "")
        if status == Status.FAILED:
            code = str(resource.error_code or "")
            raise PermanentError(
                self._scrub(resource.error_message or "Twilio failed the message at once."),
                code=code,
                raw=raw,
                status=ERROR_STATUS.get(resource.error_code or 0, Status.FAILED),
            )
        if status not in (Status.DELIVERED, Status.UNDELIVERED, Status.OPENED):
            # Twilio gave it a SID, so it has it, whatever the word ("queued", "accepted",
            # "scheduled", an unknown one): for us that is "sent".
            status = Status.SENT
        return Accepted(provider_message_id=resource.sid, status=status, raw=raw)

    def _require_client(self) -> Client:
        if self._client is None:
            raise TwilioNotConfigured(
                "Twilio is not configured: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required.",
                code="not_configured",
            )
        return self._client

    def _sender(self, outgoing: Outgoing) -> _Sender:
        """The company's own sender wins (its Messaging Service SID, or its From number or
        alphanumeric ID); then the platform's Messaging Service; then its From number."""
        if MESSAGING_SERVICE_SID.match(outgoing.sender):
            return _Sender(messaging_service_sid=outgoing.sender)
        if outgoing.sender:
            return _Sender(from_=outgoing.sender)
        if self.messaging_service_sid:
            return _Sender(messaging_service_sid=self.messaging_service_sid)
        if self.from_number:
            return _Sender(from_=self.from_number)
        raise TwilioNotConfigured(
            "Twilio has no sender: set TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER, "
            "or the company's SMS sender.",
            code="not_configured",
        )

    # --- daily reconciliation -----------------------------------------------------------

    def reports_between(self, start: datetime, end: datetime) -> Iterator[ProviderReport]:
        """Twilio's word on every message it sent from start to end, page by page (a lost
        status callback, or a later change, shows here). Nothing if Twilio is not set up
        or cannot be read: the next day's run asks again."""
        if self._client is None:
            return
        try:
            for resource in self._client.messages.stream(
                date_sent_after=start, date_sent_before=end, page_size=LOOKUP_PAGE_SIZE
            ):
                if (resource.direction or "").startswith("outbound") and resource.sid:
                    yield self._report(resource)
        except (TwilioException, requests.RequestException, ValueError):
            return

    # --- lookup -----------------------------------------------------------------------

    def lookup(self, provider_message_id: str, outgoing: Outgoing) -> ProviderReport | None:
        """What Twilio knows about the message now.

        With a SID: fetch it; Twilio's 404 raises NotFound (Twilio has no such message in
        this account). Note that a SID we hold was issued by Twilio, so a 404 for it means
        the message was deleted there (or the account changed), not that it never arrived.

        Without a SID (the answer to create() was lost): search the recipient's messages
        from our sender for the exact text, created since the message was (see `_bound`).
        NotFound only when the search saw *every* such message (no next page) and none
        was created in the window: Twilio lists a message as soon as create() answered
        with a SID (the SID is the stored resource's key), and reconciliation only asks
        minutes after the attempt, so a message Twilio accepted is on that list. Any other
        message in the window (a different text: Twilio may alter a text, e.g. a trial
        account's prefix or smart encoding), several exact matches, a truncated list, or
        any error answer None: cannot tell, so nothing is sent twice.
        """
        if self._client is None:
            return None
        if provider_message_id:
            return self._fetch(provider_message_id)
        return self._search(outgoing)

    def _fetch(self, sid: str) -> ProviderReport | None:
        client = self._require_client()
        missing = False
        try:
            resource = client.messages(sid).fetch()
        except TwilioException as error:
            missing = getattr(error, "status", None) == 404
            resource = None
        except (requests.RequestException, ValueError):
            resource = None
        if missing:
            raise NotFound(sid)  # raised here so that it carries no SDK exception along
        return self._report(resource) if resource is not None else None

    def _search(self, outgoing: Outgoing) -> ProviderReport | None:
        try:
            sender = self._sender(outgoing)
        except TwilioNotConfigured:
            return None
        bound = self._bound(outgoing)
        client = self._require_client()
        try:
            page = client.messages.page(
                to=outgoing.to, page_size=LOOKUP_PAGE_SIZE, **sender.list_kwargs()
            )
            listed = list(page)
            complete = page.next_page_url is None
        except (TwilioException, requests.RequestException, ValueError):
            return None

        in_window = [
            m
            for m in listed
            if (m.direction or "").startswith("outbound")
            and m.to == outgoing.to
            and sender.sent(m)
            and m.date_created is not None
            and m.date_created >= bound
        ]
        matches = [m for m in in_window if m.body == outgoing.text]
        if len(matches) == 1:
            return self._report(matches[0])
        if not in_window and complete:
            raise NotFound(outgoing.public_id)
        return None

    @staticmethod
    def _bound(outgoing: Outgoing) -> datetime:
        """The earliest creation time at Twilio our message can have."""
        created = outgoing.metadata.get("created_at")
        if isinstance(created, str):
            try:
                created = datetime.fromisoformat(created)
            except ValueError:
                created = None
        if isinstance(created, datetime):
            if timezone.is_naive(created):
                created = created.replace(tzinfo=UTC)
            return created - CLOCK_SKEW
        return timezone.now() - LOOKUP_WINDOW

    def _report(self, resource: Any) -> ProviderReport:
        twilio_status = resource.status or ""
        occurred_at = (
            resource.date_updated or resource.date_sent or resource.date_created or timezone.now()
        )
        return ProviderReport(
            provider_message_id=resource.sid or "",
            status=map_status(twilio_status),
            occurred_at=occurred_at,
            event=twilio_status,
            error_code=str(resource.error_code) if resource.error_code else "",
            error_message=self._scrub(resource.error_message or ""),
            provider_event_id="",  # Twilio gives status changes no id of their own
            raw={**self._raw(resource), "polled": True},
        )

    # --- errors -----------------------------------------------------------------------

    def _from_twilio_error(self, error: TwilioException) -> ProviderError:
        """Sort Twilio's refusal by whether it got the message (see the module's table)."""
        http_status = int(getattr(error, "status", 0) or 0)
        code = getattr(error, "code", None)
        try:
            code = int(code) if code is not None else None
        except (TypeError, ValueError):
            code = None
        body = self._last_error_body()
        raw = {"http_status": http_status, **body}
        if code is not None:
            raw["code"] = code
        words = body.get("message") or body.get("detail") or getattr(error, "title", "")
        code_text = str(code) if code is not None else str(http_status or "")

        if http_status == 429 or code == TOO_MANY_REQUESTS or http_status == 503:
            transient = TransientError(
                self._scrub(f"Twilio is busy (HTTP {http_status}); try again later. {words}"),
                code=code_text,
                raw=self._scrub(raw),
            )
            transient.retry_after = self._retry_after()
            return transient
        if not 400 <= http_status < 500:  # 5xx, or no HTTP answer we understand
            return AmbiguousError(
                self._scrub(
                    f"Twilio answered HTTP {http_status or '?'}; the message may have been "
                    f"sent. {words}"
                ),
                code=code_text,
                raw=self._scrub(raw),
            )
        if code in OPT_OUT_CODES:
            raw["opt_out"] = True
        status = ERROR_STATUS.get(code or 0, Status.FAILED)
        return PermanentError(
            self._scrub(f"Twilio refused the message (HTTP {http_status}): {words}".strip()),
            code=code_text,
            raw=self._scrub(raw),
            status=status,
        )

    def _last_error_body(self) -> dict[str, Any]:
        """Twilio's error JSON, field by field (never the request URI it may name)."""
        response = self.http_client.last_response
        if response is None:
            return {}
        try:
            payload = json.loads(response.text or "")
        except ValueError:
            return {}
        if not isinstance(payload, dict):
            return {}
        return {k: payload[k] for k in ERROR_FIELDS if payload.get(k) is not None}

    def _retry_after(self) -> float | None:
        response = self.http_client.last_response
        headers = getattr(response, "headers", None) or {}
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - timezone.now()).total_seconds())

    # --- payloads ---------------------------------------------------------------------

    def _raw(self, resource: Any) -> dict[str, Any]:
        """The resource's JSON-able fields, without the account SID or the auth token."""
        values = {
            "sid": resource.sid,
            "status": resource.status,
            "direction": resource.direction,
            "to": resource.to,
            "from": resource.from_,
            "messaging_service_sid": resource.messaging_service_sid,
            "body": resource.body,
            "num_segments": resource.num_segments,
            "num_media": resource.num_media,
            "error_code": resource.error_code,
            "error_message": resource.error_message,
            "price": resource.price,
            "price_unit": resource.price_unit,
            "date_created": _iso(resource.date_created),
            "date_sent": _iso(resource.date_sent),
            "date_updated": _iso(resource.date_updated),
            "api_version": resource.api_version,
        }
        return self._scrub({k: values[k] for k in RAW_FIELDS})

    def _scrub(self, value: Any) -> Any:
        """`value` without the auth token or the account SID, wherever Twilio echoed them
        (a 404's message names the request URI, which holds the account SID)."""
        if isinstance(value, str):
            if self._auth_token:
                value = value.replace(self._auth_token, "[redacted]")
            if self.account_sid:
                value = value.replace(self.account_sid, "AC[redacted]")
            return value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub(v) for v in value]
        return value


def _timeout_setting() -> tuple[float, float]:
    """settings.TWILIO_HTTP_TIMEOUT: seconds, or (connect, read) seconds."""
    value = getattr(settings, "TWILIO_HTTP_TIMEOUT", DEFAULT_TIMEOUT)
    if isinstance(value, int | float):
        return (float(value), float(value))
    connect, read = value
    return (float(connect), float(read))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _from_network_fault(error: requests.RequestException) -> ProviderError:
    """A network fault as Transient (nothing left this machine) or Ambiguous (may have)."""
    raw = {"error": type(error).__name__}
    if _nothing_sent(error):
        return TransientError(
            "Twilio could not be reached; nothing was sent.", code="network", raw=raw
        )
    return AmbiguousError(
        "The connection to Twilio broke before its answer arrived; the message may have been sent.",
        code="network",
        raw=raw,
    )


def _nothing_sent(error: requests.RequestException) -> bool:
    """Whether the request certainly never left this machine.

    Only a failure to connect proves it: refused, unresolvable, connect timeout, a proxy
    we could not reach, a TLS certificate we rejected (the handshake comes before the
    request). Everything else (closed or reset after writing, read timeout, a cut-off
    answer, an unknown fault) may have reached Twilio.
    """
    if isinstance(error, requests.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    if not isinstance(error, requests.ConnectionError):
        return False
    cause = error.args[0] if error.args else None
    reason = (
        getattr(cause, "reason", None)
        if isinstance(cause, urllib3.exceptions.MaxRetryError)
        else None
    )
    if isinstance(
        reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
    ):
        return True
    if isinstance(error, requests.exceptions.SSLError):
        # A rejected certificate is decided in the handshake, before any byte of the
        # request; other TLS errors may come while reading the answer.
        return "CERTIFICATE_VERIFY_FAILED" in str(reason or cause or error)
    return False
