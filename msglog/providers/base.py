"""The one small interface every provider implements (one module per provider).

A provider hands one message over (`send`) and answers what it knows about one
message (`lookup`, for reconciliation and polling). It never touches our database
beyond what its own module documents; the send service records what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Outgoing:
    """Everything a provider needs to send one message, and nothing it must not see."""

    public_id: str  # our opaque id: the provider's "client reference" where it has one
    company_id: int
    channel: str
    to: str  # E.164 phone or email address
    to_name: str
    sender: str  # the company's sender for this channel ("" for the provider default)
    subject: str
    text: str
    html: str
    status_callback_url: str  # where the provider reports back ("" if it cannot)
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    """The provider took the message: its id, the status it reports, its raw answer."""

    provider_message_id: str
    status: str = "sent"  # a Status value
    raw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """What a provider says about one message (a poll or lookup result)."""

    provider_message_id: str
    status: str  # a Status value, or "" for a report that does not move the status
    occurred_at: datetime
    event: str = ""  # the provider's own word for it
    error_code: str = ""
    error_message: str = ""
    provider_event_id: str = ""
    raw: dict = field(default_factory=dict)


class ProviderError(Exception):
    """A provider said no, or could not be reached. Subclasses say what to do next."""

    def __init__(self, message: str, *, code: str = "", raw: dict | None = None):
        super().__init__(message)
        self.code = code
        self.raw = raw or {}


class TransientError(ProviderError):
    """Nothing was sent and trying again later may work (timeouts, 429, 503, SMTP 4xx)."""

    retry_after: float | None = None


class PermanentError(ProviderError):
    """Nothing was sent and trying again will not help (bad number, 5xx SMTP reply)."""

    #: The status the message ends in: failed, or the specific never-sent or bounce one.
    status: str = "failed"

    def __init__(
        self, message: str, *, code: str = "", raw: dict | None = None, status: str = "failed"
    ):
        super().__init__(message, code=code, raw=raw)
        self.status = status


class AmbiguousError(ProviderError):
    """The request may have been sent: the answer was lost (connection dropped after the
    request, a 5xx other than 503). Never sent again blindly: reconciled by `lookup`."""


class NotFound(Exception):
    """`lookup` is sure the provider never received this message (safe to send again)."""


class Provider(Protocol):
    """What every provider implements. A provider whose API takes many messages in one
    request may also offer ``send_batch(outgoings) -> list[Accepted | ProviderError]``
    (one answer per message, in order); the send service uses it when it is there."""

    name: str
    channel: str

    def send(self, outgoing: Outgoing) -> Accepted:
        """Hand the message over once. Raises a ProviderError subclass on failure."""

    def lookup(self, provider_message_id: str, outgoing: Outgoing) -> Report | None:
        """What the provider knows now. None: it cannot tell; NotFound: it never got it."""
