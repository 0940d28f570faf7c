"""Fakes of outside services that tests run for real on 127.0.0.1 (nothing of ours mocked).

`fake_twilio` (below) runs `twilio_api.FakeTwilio` for one test; a test module uses it
with ``from tests.fakes import fake_twilio  # noqa: F401`` (pytest finds imported
fixtures), so no conftest.py is needed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .twilio_api import FakeTwilio


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A running fake of Twilio's Messages API, stopped after the test."""
    with FakeTwilio() as fake:
        yield fake
