"""The SMTP provider: email through Django's SMTP backend, to any relay.

SMTP gives no message id of its own, so we make the Message-ID header ourselves before
sending and use it as the provider message id: bounces (DSNs) and replies quote it, so
they can be matched to the message later. Every message also carries
``X-Message-Log-ID: <public_id>``.

What an SMTP answer means here (``code`` is the 3-digit reply code and the error message
the server's whole reply, e.g. "550 5.1.1 <a@b.test>: Recipient address rejected", which
is what msglog.rules.errors.explain_code reads; raw keeps smtp_code, smtp_enhanced, smtp_reply,
the stage and our Message-ID):

=============================================  ===============================================
the relay's answer / what happened             outcome
=============================================  ===============================================
250 after DATA                                 Accepted(status="sent"), id = our Message-ID
5xx to RCPT, enhanced code 5.1.x or 5.2.x      PermanentError(status="bounced")
5xx to RCPT, no enhanced code, 550/551/553     PermanentError(status="bounced")
5xx to DATA, enhanced code 5.1.x or 5.2.x      PermanentError(status="bounced")
any other 5xx to RCPT or DATA                  PermanentError(status="failed"): a relay's
                                               "550 5.7.1 relaying denied" is our problem,
                                               not the recipient's address
4xx to RCPT or DATA (421, 450, 451, 452...)    TransientError
5xx / 4xx at greeting, EHLO, AUTH, MAIL FROM   PermanentError(status="failed") / Transient-
                                               Error with no code, the message prefixed
                                               with what was refused: it is our login or
                                               sender, and every SMTP code explanation
                                               speaks of the recipient's address
connection refused, DNS failure, connect       TransientError (nothing reached the relay)
timeout, TLS failure, connection lost before
the message's final "." was written
connection lost or read timeout after the      AmbiguousError: the relay may have the
whole message was written, before the reply    message; it is never sent again blindly
protocol problems (no STARTTLS, no AUTH        PermanentError(status="failed"): a
method, non-ASCII address refused)             configuration problem, retrying won't help
an address or header Django refuses            PermanentError (invalid_recipient for the
                                               To address, else failed), before connecting
=============================================  ===============================================

`lookup` returns None: an SMTP relay cannot be asked about a message it took, so the
send service settles an ambiguous SMTP send as "failed, outcome unknown" once its
timeout has passed (that decision is the send service's, not this module's).
"""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import formataddr, make_msgid, parseaddr
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend
from django.core.mail.message import sanitize_address
from django.core.mail.utils import DNS_NAME
from django.core.validators import validate_email

from msglog.rules.provider_interface import (
    Accepted,
    AmbiguousError,
    Outgoing,
    PermanentError,
    ProviderReport,
    TransientError,
)
from msglog.rules.statuses import Status

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

#: Seconds to wait for the relay at each step. Django's default is "forever", which would
#: hold a worker hostage to a stalled relay; EMAIL_TIMEOUT, when set, wins.
DEFAULT_TIMEOUT = 30.0
#: Message.provider_message_id holds 100 characters: a Message-ID must fit.
MAX_MESSAGE_ID = 100
#: RFC 3463 enhanced status code at the start of a reply's text ("5.1.1 <a@b>: ...").
_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")
#: Basic codes that refuse the recipient address itself when no enhanced code says more.
_RECIPIENT_REFUSED = {550, 551, 553}
#: Steps whose refusal is about us (greeting, EHLO, STARTTLS, AUTH, MAIL FROM), in words.
_OUR_SIDE = {
    "connect": "The mail server refused the connection or our login",
    "mail": "The mail server refused our sender address",
}


@dataclass
class _Progress:
    """How far one SMTP conversation got: the one fact that decides whether a lost
    connection means "nothing was sent" or "the relay may have it"."""

    stage: str = "connect"  # connect, mail, rcpt, data, body, body_sent, answered
    reply: tuple[int, bytes] | None = None  # the final reply to DATA, once read

    def enter(self, stage: str) -> None:
        self.stage = stage


class _TrackedMixin:
    """smtplib.SMTP that records its progress; everything else is smtplib's own.

    smtplib.SMTP.data() writes "DATA", reads 354, writes the whole message and its
    final ".", then reads the reply. A lost connection anywhere raises the same
    SMTPServerDisconnected, so the stage is what tells the steps apart.
    """

    progress: _Progress

    def mail(self, sender: str, options: Any = ()) -> tuple[int, bytes]:
        self.progress.enter("mail")
        return super().mail(sender, options)  # type: ignore[misc]

    def rcpt(self, recip: str, options: Any = ()) -> tuple[int, bytes]:
        self.progress.enter("rcpt")
        return super().rcpt(recip, options)  # type: ignore[misc]

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self.progress.enter("data")
        code, reply = super().data(msg)  # type: ignore[misc]
        self.progress.reply = (code, reply)
        self.progress.enter("answered")
        return code, reply

    def getreply(self) -> tuple[int, bytes]:
        code, reply = super().getreply()  # type: ignore[misc]
        if self.progress.stage == "data" and code == 354:
            # The next write is the message itself.
            self.progress.enter("body")
        return code, reply

    def send(self, s: ReadableBuffer | str) -> None:
        super().send(s)  # type: ignore[misc]
        if self.progress.stage == "body":
            # sendall() returned: the message and its final "." are on their way, and
            # from here a lost answer may hide an accepted message.
            self.progress.enter("body_sent")


class _TrackedSMTP(_TrackedMixin, smtplib.SMTP):
    def __init__(self, *args: Any, progress: _Progress, **kwargs: Any):
        self.progress = progress  # set first: __init__ already connects
        super().__init__(*args, **kwargs)


class _TrackedSMTPSSL(_TrackedMixin, smtplib.SMTP_SSL):
    def __init__(self, *args: Any, progress: _Progress, **kwargs: Any):
        self.progress = progress
        super().__init__(*args, **kwargs)


class _Backend(EmailBackend):
    """Django's SMTP backend, with a connection that reports how far it got."""

    def __init__(self, *args: Any, progress: _Progress, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.progress = progress

    @property
    def connection_class(self):
        klass = _TrackedSMTPSSL if self.use_ssl else _TrackedSMTP
        progress = self.progress

        def connect(*args: Any, **kwargs: Any) -> smtplib.SMTP:
            return klass(*args, progress=progress, **kwargs)

        return connect


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _full_reply(code: int, reply: bytes | str) -> str:
    """The reply as the server wrote it ("550 5.1.1 <a@b>: User unknown"); smtplib splits
    the code off and joins continuation lines with newlines."""
    text = " ".join(_text(reply).split())
    return f"{code} {text}".strip() if code > 0 else text


def _enhanced(reply: bytes | str) -> str:
    match = _ENHANCED.match(_text(reply))
    return match.group(1) if match else ""


def recipient_header(name: str, address: str) -> str:
    """The To header for `address` with its display name: formataddr's quoting, or, for an
    internationalized address formataddr refuses, the email package's own."""
    if not name:
        return address
    try:
        return formataddr((name, address))
    except UnicodeError:
        pass
    try:
        return str(Address(display_name=name, addr_spec=address))
    except ValueError:  # a non-ASCII local part: send to the bare address
        return address


def _domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].strip().lower()


def _message_id(from_email: str) -> str:
    """A new Message-ID in the sender's domain (where bounces and replies come back to),
    short enough for Message.provider_message_id."""
    labels = (_domain_of(from_email) or DNS_NAME.get_fqdn()).split(".")
    # make_msgid itself takes ~45 characters; drop leading labels of a very long domain.
    while len(".".join(labels)) > MAX_MESSAGE_ID - 50 and len(labels) > 2:
        labels.pop(0)
    return make_msgid(domain=".".join(labels)[: MAX_MESSAGE_ID - 50])


class SmtpProvider:
    """Sends email through the SMTP relay the EMAIL_* settings name."""

    name = "smtp"
    channels = frozenset({"email"})
    channel = "email"

    def __init__(self, channel: str = "email") -> None:
        pass  # email only: one channel, nothing to set up before a send

    def send(self, outgoing: Outgoing) -> Accepted:
        from_email = outgoing.sender or settings.DEFAULT_FROM_EMAIL
        message_id = _message_id(from_email)
        message = self._message(outgoing, from_email, message_id)
        progress = _Progress()
        backend = _Backend(
            host=settings.EMAIL_HOST,
            port=settings.EMAIL_PORT,
            username=settings.EMAIL_HOST_USER,
            password=settings.EMAIL_HOST_PASSWORD,
            use_tls=settings.EMAIL_USE_TLS,
            timeout=getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_TIMEOUT,
            # Not silent: Django would swallow every smtplib error and return 0.
            fail_silently=False,
            progress=progress,
        )
        raw: dict[str, Any] = {"message_id": message_id}
        try:
            backend.send_messages([message])
        except smtplib.SMTPServerDisconnected as error:
            raise self._lost(error, progress, raw) from error
        except smtplib.SMTPRecipientsRefused as error:
            # One recipient: its (code, reply) is the only entry.
            code, reply = next(iter(error.recipients.values()), (-1, b""))
            raise self._refused(code, reply, "rcpt", raw) from error
        except smtplib.SMTPResponseException as error:
            # SMTPSenderRefused, SMTPDataError, SMTPConnectError, SMTPHeloError,
            # SMTPAuthenticationError: each carries the reply code and text.
            raise self._refused(error.smtp_code, error.smtp_error, progress.stage, raw) from error
        except smtplib.SMTPException as error:
            # No reply code: STARTTLS or AUTH unsupported, an address the relay cannot
            # take without SMTPUTF8. A configuration problem; resending changes nothing.
            if progress.stage == "body_sent":
                raise self._lost(error, progress, raw) from error
            raise PermanentError(
                f"The mail server could not be used: {error}",
                raw={**raw, "stage": progress.stage, "error": str(error)},
            ) from error
        except OSError as error:
            # Refused, DNS failure, connect timeout, TLS handshake: raised while opening,
            # before any of the message was written (smtplib turns later socket errors
            # into SMTPServerDisconnected).
            if progress.stage == "body_sent":
                raise self._lost(error, progress, raw) from error
            raise TransientError(
                # No host or port in the text: it is shown on the message's page.
                f"Could not reach the mail server: {error}",
                raw={**raw, "stage": progress.stage, "error": f"{type(error).__name__}: {error}"},
            ) from error
        except ValueError as error:
            # UnicodeEncodeError: smtplib cannot write a non-ASCII address in a command
            # (no SMTPUTF8); raised before the command is written.
            if progress.stage == "body_sent":
                raise self._lost(error, progress, raw) from error
            raise PermanentError(
                f"The message could not be sent over SMTP: {error}",
                raw={**raw, "stage": progress.stage, "error": str(error)},
            ) from error
        code, reply = progress.reply or (250, b"")
        return Accepted(
            provider_message_id=message_id,
            status=Status.SENT,
            raw={**raw, "smtp_code": code, "smtp_reply": _full_reply(code, reply)},
        )

    def _message(
        self, outgoing: Outgoing, from_email: str, message_id: str
    ) -> EmailMultiAlternatives:
        """The message to send, checked before any connection is opened: a header or
        address Django refuses is a permanent failure with nothing sent."""
        message = EmailMultiAlternatives(
            subject=outgoing.subject,
            body=outgoing.text,
            from_email=from_email,
            to=[recipient_header(outgoing.to_name, outgoing.to)],
            headers={"Message-ID": message_id, "X-Message-Log-ID": outgoing.public_id},
        )
        if outgoing.html:
            message.attach_alternative(outgoing.html, "text/html")
        try:
            encoding = message.encoding or settings.DEFAULT_CHARSET
            sanitize_address(message.from_email, encoding)
        except ValueError as error:
            raise PermanentError(
                f"The sender address {from_email!r} is not valid: {error}",
                raw={"message_id": message_id},
            ) from error
        try:
            validate_email(outgoing.to)
            sanitize_address(message.to[0], encoding)
        except (ValidationError, ValueError) as error:
            words = " ".join(getattr(error, "messages", None) or [str(error)])
            raise PermanentError(
                f"The recipient address {outgoing.to!r} is not valid: {words}",
                code="invalid",
                status=Status.INVALID_RECIPIENT,
                raw={"message_id": message_id},
            ) from error
        try:
            message.message()
        except ValueError as error:  # BadHeaderError: a newline in the subject or a name
            raise PermanentError(
                f"The message could not be built: {error}",
                raw={"message_id": message_id},
            ) from error
        return message

    @staticmethod
    def _refused(code: int, reply: bytes | str, stage: str, raw: dict) -> Exception:
        """The error for a reply code other than 250, at the step it answered."""
        enhanced = _enhanced(reply)
        full = _full_reply(code, reply)
        details = {
            **raw,
            "smtp_code": code,
            "smtp_enhanced": enhanced,
            "smtp_reply": full,
            "stage": stage,
        }
        if stage in _OUR_SIDE and 400 <= code < 600:
            # A refusal of our login or sender, not of the recipient. No code: the SMTP
            # explanations (msglog.rules.errors) all speak of the recipient's address, and would
            # send people to fix a contact; the server's own words say what to fix.
            message = f"{_OUR_SIDE[stage]}: {full}"
            if code < 500:
                return TransientError(message, raw=details)
            return PermanentError(message, raw=details)
        if 400 <= code < 500:
            return TransientError(full, code=str(code), raw=details)
        if code >= 500:
            address_problem = enhanced[:4] in {"5.1.", "5.2."}
            # "answered": the reply to the message itself (end of DATA).
            bounced = (stage in {"rcpt", "data", "answered"} and address_problem) or (
                stage == "rcpt" and not enhanced and code in _RECIPIENT_REFUSED
            )
            return PermanentError(
                full,
                code=str(code),
                raw=details,
                status=Status.BOUNCED if bounced else Status.FAILED,
            )
        # Not a 4xx or 5xx: an answer SMTP does not define here. After the message was
        # written the relay may have it; before, nothing was sent.
        if stage in {"body_sent", "answered"}:
            return AmbiguousError(f"Unexpected reply after the message: {full}", raw=details)
        return TransientError(f"Unexpected reply: {full}", code=str(code), raw=details)

    @staticmethod
    def _lost(error: Exception, progress: _Progress, raw: dict) -> Exception:
        """The error for a connection lost (closed, reset, read timeout) mid-conversation."""
        details = {**raw, "stage": progress.stage, "error": str(error)}
        if progress.stage == "body_sent":
            return AmbiguousError(
                "The connection to the mail server was lost after the message was sent, "
                f"before its answer: {error}",
                raw=details,
            )
        return TransientError(
            f"The connection to the mail server was lost before the message was sent: {error}",
            raw=details,
        )

    def lookup(self, provider_message_id: str, outgoing: Outgoing) -> ProviderReport | None:
        """None, always: an SMTP relay cannot be asked what it did with a message.

        A send left ambiguous (connection lost after the message was written) therefore
        stays unknown until the send service's timeout, which ends it as failed with
        the outcome unknown; a DSN quoting our Message-ID may still tell more later.
        """
        return None
