"""The one small interface every provider implements (one folder per provider).

A provider hands one message over (`send`) and answers what it knows about one
message (`lookup`, for reconciliation and polling). It never touches our database
beyond what its own module documents; the delivery service records what it returns.
Providers are found by name through the MESSAGE_PROVIDERS setting (dotted paths), so
the services that call them never import them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
class ProviderReport:
    """What a provider says about one message (a poll or lookup result, or one of the
    simulator's reports)."""

    provider_message_id: str
    status: str  # a Status value, or "" for a report that does not move the status
    occurred_at: datetime
    event: str = ""  # the provider's own word for it
    error_code: str = ""
    error_message: str = ""
    provider_event_id: str = ""
    raw: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        """The report as a task argument (JSON: the time as ISO 8601)."""
        return {**asdict(self), "occurred_at": self.occurred_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict) -> ProviderReport:
        return cls(**{**data, "occurred_at": datetime.fromisoformat(data["occurred_at"])})


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
    (one answer per message, in order); the send service uses it when it is there. One
    that reports back by itself rather than through webhooks (the simulator) may offer
    ``acceptance_recorded()``, called once the answers it gave are committed."""

    name: str
    #: The channels the provider sends; it is made with ``ProviderClass(channel)``.
    channels: frozenset[str]
    channel: str

    def __init__(self, channel: str) -> None:
        """A provider for one of its `channels`."""

    def send(self, outgoing: Outgoing) -> Accepted:
        """Hand the message over once. Raises a ProviderError subclass on failure."""

    def lookup(self, provider_message_id: str, outgoing: Outgoing) -> ProviderReport | None:
        """What the provider knows now. None: it cannot tell; NotFound: it never got it."""
