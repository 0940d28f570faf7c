"""Providers behind one small interface (base.Provider), one module each.

Which provider serves a channel is a setting (SMS_PROVIDER, EMAIL_PROVIDER); the
embedded default is the simulator for both.
"""

from __future__ import annotations

from django.conf import settings

from ..kinds import Channel
from .base import Provider

PROVIDERS_BY_CHANNEL = {
    Channel.SMS: ("simulator", "twilio"),
    Channel.EMAIL: ("simulator", "smtp", "anymail"),
}


def provider_name(channel: str) -> str:
    return settings.SMS_PROVIDER if channel == Channel.SMS else settings.EMAIL_PROVIDER


def get_provider(channel: str, name: str | None = None) -> Provider:
    """The provider that sends `channel` (or the one named, for a message sent earlier)."""
    name = name or provider_name(channel)
    if name not in PROVIDERS_BY_CHANNEL[channel]:
        raise ValueError(f"No {channel} provider named {name!r}")
    if name == "simulator":
        from .simulator import SimulatorProvider

        return SimulatorProvider(channel)
    if name == "twilio":
        from .twilio import TwilioProvider

        return TwilioProvider()
    if name == "smtp":
        from .smtp import SmtpProvider

        return SmtpProvider()
    from .anymail import AnymailProvider

    return AnymailProvider()
