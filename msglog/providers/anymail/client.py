"""The anymail provider: email through any ESP django-anymail supports.

Which ESP is a setting: ``ANYMAIL_EMAIL_BACKEND`` names an anymail backend, e.g.
"anymail.backends.postmark.EmailBackend", and the ``ANYMAIL`` dict holds its credentials
(``POSTMARK_SERVER_TOKEN`` ...). When ANYMAIL_EMAIL_BACKEND is empty, EMAIL_BACKEND is used
if it is an anymail backend. The provider message id is the ESP's own id
(``message.anymail_status.message_id``), the one its webhooks carry; every message also
carries ``metadata={"message_log_id": public_id}``, which anymail's tracking webhooks
return as ``event.metadata``, so even a send whose answer was lost can be matched.

What the ESP's answer means here:

=================================================  ==========================================
anymail's answer                                   outcome
=================================================  ==========================================
recipient status "sent" or "queued"                Accepted(status="sent"), id = ESP's id
recipient status "unknown" with an ESP id          Accepted(status="sent") (webhooks will say)
recipient status "unknown" without an id           AmbiguousError
"rejected", reason invalid                         PermanentError(status="invalid_recipient")
"rejected", reason bounced                         PermanentError(status="bounced")
"rejected", reason unsubscribed, spam, blocked     PermanentError(status="suppressed")
"rejected", no or another reason                   PermanentError(status="failed")
"invalid"                                          PermanentError(status="invalid_recipient")
"failed"                                           PermanentError(status="failed")
HTTP 429, 503 (and 408)                            TransientError (retry_after from Retry-After)
HTTP 5xx other than 503                            AmbiguousError: the ESP may have taken it
HTTP 4xx other than 408, 429                       PermanentError(status="failed")
HTTP 2xx/3xx the backend cannot read               AmbiguousError
no connection: refused, DNS, connect timeout, TLS  TransientError (the request never left)
connection lost or read timeout after sending      AmbiguousError
an API error with no HTTP status (non-HTTP SDKs)   AmbiguousError (we cannot tell)
missing backend or credentials, unsupported        PermanentError(status="failed")
feature, unserializable data
=================================================  ==========================================

anymail normalizes no reject *reason* at send time (only its webhooks do), so the reason
is read from the ESP's answer where its shape is known: Postmark's ErrorCode 406
("inactive recipient": an earlier hard bounce, complaint or manual suppression, so
"blocked") and Mandrill's per-recipient ``reject_reason``.

`lookup` returns None: ESPs report by webhook, and anymail has no API to ask one about a
message. An ambiguous send is settled by a webhook that carries its metadata, or ends as
"failed, outcome unknown" after the send service's timeout.
"""

from __future__ import annotations

import json
from typing import Any

import requests
from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailRecipientsRefused,
    AnymailUnsupportedFeature,
)
from anymail.utils import parse_address_list
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.validators import validate_email
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from msglog.providers.smtp.client import recipient_header
from msglog.rules.provider_interface import (
    Accepted,
    AmbiguousError,
    Outgoing,
    PermanentError,
    ProviderError,
    ProviderReport,
    TransientError,
)
from msglog.rules.statuses import Status

#: Tag on every message, so the ESP's dashboard tells this app's mail from other senders
#: on the same account. One tag only: Postmark, SparkPost, Mailjet, Postal take one.
TAG = "message-log"
#: HTTP statuses that say "nothing was done, ask again later".
RETRY_LATER = {408, 429, 503}
#: Our status for each anymail reject reason (anymail.signals.RejectReason words).
STATUS_BY_REASON = {
    "invalid": Status.INVALID_RECIPIENT,
    "bounced": Status.BOUNCED,
    "unsubscribed": Status.SUPPRESSED,
    "spam": Status.SUPPRESSED,
    "blocked": Status.SUPPRESSED,
}
#: Mandrill's send-time reject_reason, in anymail's reject reason words.
MANDRILL_REASONS = {
    "hard-bounce": "bounced",
    "soft-bounce": "bounced",
    "spam": "spam",
    "unsub": "unsubscribed",
    "custom": "blocked",
    "rule": "blocked",
    "invalid": "invalid",
}
#: Postmark's ErrorCode for "the recipient is inactive" (suppressed by Postmark).
POSTMARK_INACTIVE = 406
MAX_TEXT = 1000  # characters of an ESP's answer kept in raw and in error messages


def backend_path() -> str:
    """The anymail backend to send with, or "" when none is configured."""
    path = getattr(settings, "ANYMAIL_EMAIL_BACKEND", "") or ""
    if not path and str(getattr(settings, "EMAIL_BACKEND", "")).startswith("anymail."):
        path = settings.EMAIL_BACKEND
    return path


class AnymailProvider:
    """Sends email through the anymail ESP backend that the settings name."""

    name = "anymail"
    channels = frozenset({"email"})
    channel = "email"

    def __init__(self, channel: str = "email") -> None:
        pass  # email only: one channel, nothing to set up before a send

    def send(self, outgoing: Outgoing) -> Accepted:
        path = backend_path()
        if not path:
            raise PermanentError(
                "No email service is configured (ANYMAIL_EMAIL_BACKEND is empty).",
                raw={"error": "ANYMAIL_EMAIL_BACKEND is not set"},
            )
        from_email = outgoing.sender or settings.DEFAULT_FROM_EMAIL
        to = recipient_header(outgoing.to_name, outgoing.to)
        self._check_addresses(from_email, outgoing.to, to)
        try:
            connection = get_connection(path, fail_silently=False)
        except (ImproperlyConfigured, ImportError) as error:
            # Missing credentials or package: nothing was sent, and nothing will be
            # until an operator fixes the settings.
            raise PermanentError(
                f"The email service is not configured: {_one_line(error)}",
                raw={"backend": path, "error": _one_line(error)},
            ) from error

        message = self._message(outgoing, from_email, to, extras=True)
        try:
            try:
                connection.send_messages([message])
            except AnymailUnsupportedFeature:
                # Raised while building the ESP's request, before anything is posted:
                # this ESP takes no metadata, tags or extra headers. Send once more
                # without them (the id its answer gives still identifies the message).
                message = self._message(outgoing, from_email, to, extras=False)
                connection.send_messages([message])
        except AnymailRecipientsRefused as error:
            raise self._refused(message, outgoing.to) from error
        except AnymailAPIError as error:
            raise self._api_error(error) from error
        except AnymailError as error:
            # Unsupported feature, serialization, an address anymail cannot encode:
            # decided before posting, and the same message fails the same way again.
            raise PermanentError(
                f"The email service cannot send this message: {_one_line(error)}",
                raw={"error": _one_line(error)},
            ) from error
        except ImproperlyConfigured as error:
            raise PermanentError(
                f"The email service is not configured: {_one_line(error)}",
                raw={"backend": path, "error": _one_line(error)},
            ) from error
        return self._accepted(message, outgoing.to)

    @staticmethod
    def _check_addresses(from_email: str, address: str, to: str) -> None:
        """Refuse, before any request, an address anymail would refuse while building it,
        telling the recipient's (invalid_recipient) from our sender's (failed)."""
        try:
            validate_email(address)
            parse_address_list([to], field="to")
        except (ValidationError, AnymailError) as error:
            words = " ".join(getattr(error, "messages", None) or [_one_line(error)])
            raise PermanentError(
                f"The recipient address {address!r} is not valid: {words}",
                code="invalid",
                status=Status.INVALID_RECIPIENT,
            ) from error
        try:
            parse_address_list([from_email], field="from_email")
        except AnymailError as error:
            raise PermanentError(f"The sender address is not valid: {_one_line(error)}") from error

    @staticmethod
    def _message(
        outgoing: Outgoing, from_email: str, to: str, *, extras: bool
    ) -> EmailMultiAlternatives:
        message = EmailMultiAlternatives(
            subject=outgoing.subject,
            body=outgoing.text,
            from_email=from_email,
            to=[to],
        )
        if outgoing.html:
            message.attach_alternative(outgoing.html, "text/html")
        if extras:
            message.extra_headers["X-Message-Log-ID"] = outgoing.public_id
            # anymail's expando attributes: each ESP backend maps them to its own API.
            message.metadata = {"message_log_id": outgoing.public_id}  # type: ignore[attr-defined]
            message.tags = [TAG]  # type: ignore[attr-defined]
        return message

    def _accepted(self, message: EmailMultiAlternatives, to: str) -> Accepted:
        status = getattr(message, "anymail_status", None)
        recipient = _recipient(status, to)
        word = getattr(recipient, "status", None)
        message_id = getattr(recipient, "message_id", None)
        if message_id is None and status is not None and not isinstance(status.message_id, set):
            message_id = status.message_id
        raw = _raw(status, word)
        if word in {"sent", "queued"} or (word == "unknown" and message_id is not None):
            return Accepted(
                provider_message_id="" if message_id is None else str(message_id),
                status=Status.SENT,
                raw=raw,
            )
        if word in {"rejected", "invalid", "failed"}:
            raise self._refused(message, to)
        if word is None and status is not None and status.status is None:
            # A pre_send signal receiver canceled it (anymail's AnymailCancelSend).
            raise PermanentError("The send was canceled before reaching the email service.")
        raise AmbiguousError(
            f"The email service answered without saying whether it took the message "
            f"(status {word!r}).",
            raw=raw,
        )

    @staticmethod
    def _refused(message: EmailMultiAlternatives, to: str) -> PermanentError:
        """The error for a recipient the ESP refused (rejected, invalid, failed)."""
        status = getattr(message, "anymail_status", None)
        word = getattr(_recipient(status, to), "status", None) or "rejected"
        body = _json(getattr(status, "esp_response", None))
        raw = _raw(status, word)
        said = _esp_words(body)
        if word == "invalid":
            text, code, final = (
                "refused the address as invalid",
                "invalid",
                Status.INVALID_RECIPIENT,
            )
        elif word == "failed":
            text, code, final = "could not send it", "failed", Status.FAILED
        else:
            reason = _reject_reason(body, to)
            raw["reject_reason"] = reason
            # The code is anymail's reason word, which msglog.rules.errors explains.
            text, code = "rejected the recipient", reason or "other"
            final = STATUS_BY_REASON.get(reason, Status.FAILED)
        return PermanentError(
            f"The email service {text}" + (f": {said}" if said else "."),
            code=code,
            raw=raw,
            status=final,
        )

    @staticmethod
    def _api_error(error: AnymailAPIError) -> ProviderError:
        """The error for an API call that failed: by HTTP status, or by how far the
        request got when there is none."""
        response = error.response
        code = error.status_code
        if code is None and isinstance(response, dict):
            # Non-HTTP SDKs (Amazon SES's boto3) keep the status in the response metadata.
            code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raw: dict[str, Any] = {"esp": error.esp_name or "", "http_status": code}
        text = _response_text(response)
        if text:
            raw["body"] = text
        words = _one_line(error)
        if code is None:
            cause = error.__cause__
            raw["error"] = f"{type(cause).__name__}: {_one_line(cause)}" if cause else words
            if isinstance(cause, requests.RequestException) and not _request_left(cause):
                return TransientError(f"Could not reach the email service: {raw['error']}", raw=raw)
            return AmbiguousError(f"The email service's answer was lost: {raw['error']}", raw=raw)
        http = f"HTTP {code}"
        if code in RETRY_LATER:
            transient = TransientError(words, code=http, raw=raw)
            transient.retry_after = _retry_after(response)
            return transient
        if code >= 500 or code < 400:
            return AmbiguousError(words, code=http, raw=raw)
        return PermanentError(words, code=http, raw=raw)

    def lookup(self, provider_message_id: str, outgoing: Outgoing) -> ProviderReport | None:
        """None, always: ESPs report by webhook and anymail cannot ask one about a message.

        A webhook carrying the message's id (or its ``message_log_id`` metadata) settles
        it; otherwise the send service ends it as failed with the outcome unknown.
        """
        return None


def _recipient(status: Any, to: str) -> Any:
    """anymail's status for our one recipient (keys are addresses, case as the ESP wrote)."""
    recipients = getattr(status, "recipients", None) or {}
    if to in recipients:
        return recipients[to]
    for address, recipient in recipients.items():
        if str(address).lower() == to.lower():
            return recipient
    return next(iter(recipients.values()), None) if len(recipients) == 1 else None


def _request_left(cause: requests.RequestException) -> bool:
    """Whether the HTTP request may have reached the ESP before the connection failed.

    requests raises ConnectTimeout, or ConnectionError wrapping urllib3's MaxRetryError
    whose reason is NewConnectionError (refused, DNS), when no connection was made; an
    SSLError or ProxyError fails before the request is written too. A ConnectionError
    wrapping ProtocolError (connection closed or reset), a ReadTimeout or anything else
    happened after the request was written: it may have been taken.
    """
    if isinstance(
        cause,
        requests.ConnectTimeout
        | requests.exceptions.SSLError
        | requests.exceptions.ProxyError
        | requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidHeader,
    ):
        return False
    if isinstance(cause, requests.ConnectionError):
        inner = cause.args[0] if cause.args else None
        reason = getattr(inner, "reason", inner)  # MaxRetryError.reason
        if isinstance(reason, NewConnectionError | ConnectTimeoutError):
            return False
    return True


def _retry_after(response: Any) -> float | None:
    """Seconds from a Retry-After header given in seconds (the form ESPs use)."""
    headers = getattr(response, "headers", None) or {}
    try:
        return max(0.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return None


def _json(response: Any) -> Any:
    if isinstance(response, dict | list):
        return response
    try:
        return response.json()
    except (AttributeError, ValueError):
        return None


def _response_text(response: Any) -> str:
    if isinstance(response, dict | list):
        return json.dumps(response, default=str)[:MAX_TEXT]
    text = getattr(response, "text", "")
    return text[:MAX_TEXT] if isinstance(text, str) else ""


def _esp_words(body: Any) -> str:
    """The ESP's own explanation in its answer, where it has one."""
    if isinstance(body, dict):
        for key in ("Message", "message", "error", "detail"):
            if isinstance(body.get(key), str):
                return _one_line(body[key])
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return _esp_words(body[0]) or str(body[0].get("reject_reason") or "")
    return ""


def _reject_reason(body: Any, to: str) -> str:
    """anymail's reject reason word, read from an ESP answer whose shape we know."""
    if isinstance(body, dict) and body.get("ErrorCode") == POSTMARK_INACTIVE:
        return "blocked"
    if isinstance(body, list):
        for item in body:
            if isinstance(item, dict) and str(item.get("email", "")).lower() == to.lower():
                return MANDRILL_REASONS.get(str(item.get("reject_reason") or ""), "")
    return ""


def _raw(status: Any, word: str | None) -> dict:
    """What we keep of anymail's answer: statuses, ids and the ESP's own response."""
    raw: dict[str, Any] = {"status": word}
    if status is None:
        return raw
    message_id = status.message_id
    raw["message_id"] = sorted(map(str, message_id)) if isinstance(message_id, set) else message_id
    raw["recipients"] = {
        str(address): {"status": r.status, "message_id": r.message_id}
        for address, r in (status.recipients or {}).items()
    }
    body = _json(status.esp_response)
    if body is not None:
        raw["esp_response"] = body
    elif text := _response_text(status.esp_response):
        raw["esp_response"] = text
    return json.loads(json.dumps(raw, default=str))  # stored as JSON: plain values only


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())[:MAX_TEXT]
