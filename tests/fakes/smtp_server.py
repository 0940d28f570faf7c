"""A real SMTP server on 127.0.0.1 (aiosmtpd) whose answers are scripted by recipient.

    anything@ok.test (any other address)  250, and the message is kept
    *@bounce.test      "550 5.1.1 <addr>: Recipient address rejected: User unknown" at RCPT
    *@defer.test       "451 4.3.0 Try again later" at RCPT
    *@cut.test         the whole message is read (and kept), then the connection is
                       closed without an answer: the client cannot know it was taken
    *@stall.test       the whole message is read (and kept), then no answer for
                       `stall_seconds`: the client's read timeout fires
    *@spam.test        "554 5.7.1 Message rejected as spam" after DATA
    *@relay.test       "550 5.7.1 Relaying denied" at RCPT (a relay's refusal)
    from *@refused.test  "553 5.7.1 Sender address rejected" at MAIL FROM

Use it as a context manager (or the `smtp_server` fixture of a test module):

    with FakeSmtpServer() as server:
        ... send to 127.0.0.1:server.port ...
        server.messages[0]["Message-ID"]
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

STALL_SECONDS = 3.0


@dataclass
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class ScriptedHandler:
    """aiosmtpd handler hooks; what each recipient domain gets is in the module docstring."""

    stall_seconds: float = STALL_SECONDS
    received: list[Received] = field(default_factory=list)
    sessions: int = 0  # conversations that said EHLO/HELO (the controller's probe does not)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (address, reply)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _domain(address: str) -> str:
        return address.rpartition("@")[2].lower()

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list:
        session.host_name = hostname  # the "new" hook style must do this itself
        with self.lock:
            self.sessions += 1
        return responses

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if self._domain(address) == "refused.test":
            return f"553 5.7.1 <{address}>: Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        domain = self._domain(address)
        if domain == "bounce.test":
            reply = f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        elif domain == "defer.test":
            reply = "451 4.3.0 Try again later"
        elif domain == "relay.test":
            reply = f"550 5.7.1 <{address}>: Relaying denied"
        else:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        with self.lock:
            self.refused.append((address, reply))
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        domains = {self._domain(a) for a in envelope.rcpt_tos}
        if "spam.test" in domains:
            return "554 5.7.1 Message rejected as spam"
        with self.lock:
            self.received.append(
                Received(envelope.mail_from or "", list(envelope.rcpt_tos), content)
            )
        if "cut.test" in domains:
            # The message is taken, and the answer never leaves: close the connection.
            # aiosmtpd still "pushes" our return value, to a closed transport (a no-op).
            assert server.transport is not None
            server.transport.close()
            return "250 never sent"
        if "stall.test" in domains:
            await asyncio.sleep(self.stall_seconds)
        return "250 2.0.0 OK: queued as fake"


class _AnyPortController(Controller):
    """aiosmtpd's Controller on a port the OS picks (port=0), so parallel test runs never
    collide; the stock one would probe port 0 to check the server started."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class FakeSmtpServer:
    """A started SMTP server on 127.0.0.1 with a `ScriptedHandler`."""

    host = "127.0.0.1"

    def __init__(self, stall_seconds: float = STALL_SECONDS):
        self.handler = ScriptedHandler(stall_seconds=stall_seconds)
        self.controller = _AnyPortController(self.handler, hostname=self.host, port=0)

    @property
    def port(self) -> int:
        return self.controller.port

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def messages(self) -> list[EmailMessage]:
        """The kept messages, parsed."""
        return [r.message for r in self.handler.received]

    @property
    def sessions(self) -> int:
        return self.handler.sessions

    def start(self) -> FakeSmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> FakeSmtpServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
