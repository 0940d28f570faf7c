"""Fakes of outside services that tests run for real on 127.0.0.1 (nothing of ours mocked).

`fake_twilio` (below) runs `twilio_api.FakeTwilio` for one test; a test module uses it
with ``from tests.fakes import fake_twilio  # noqa: F401`` (pytest finds imported
fixtures), so no conftest.py is needed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from msglog.rules.provider_interface import Outgoing
from tests.fakes.twilio_api import FakeTwilio


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A running fake of Twilio's Messages API, stopped after the test."""
    with FakeTwilio() as fake:
        yield fake


def free_port() -> int:
    """A port nothing listens on: bound by the OS for us, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def email_outgoing(to: str = "ann@ok.test", **fields) -> Outgoing:
    """An email as the send service hands it to a provider."""
    values = {
        "public_id": "m_01HXAMPLE",
        "company_id": 1,
        "channel": "email",
        "to": to,
        "to_name": "Ann Example",
        "sender": "",
        "subject": "Your appointment",
        "text": "See you on Monday at 10:00.",
        "html": "<p>See you on <b>Monday</b> at 10:00.</p>",
        "status_callback_url": "",
        **fields,
    }
    return Outgoing(**values)
