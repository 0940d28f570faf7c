"""Which provider sends each channel, and the provider object for a name.

The providers live in msglog/providers/<name>/ and are found through the
MESSAGE_PROVIDERS setting (name -> dotted path of the class), so the services that call
them never import them; adding a provider is a folder and a line in that setting.
Which provider serves a channel is a setting too (SMS_PROVIDER, EMAIL_PROVIDER); the
embedded default is the simulator for both.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.utils.module_loading import import_string

from msglog.rules.kinds import Channel
from msglog.rules.provider_interface import Provider


def provider_name(channel: str) -> str:
    """The provider new messages on `channel` are sent through."""
    return settings.SMS_PROVIDER if channel == Channel.SMS else settings.EMAIL_PROVIDER


@functools.cache
def provider_class(name: str) -> type[Provider]:
    path = settings.MESSAGE_PROVIDERS.get(name)
    if path is None:
        raise ValueError(f"No provider named {name!r} (MESSAGE_PROVIDERS)")
    return import_string(path)


def get_provider(channel: str, name: str | None = None) -> Provider:
    """The provider that sends `channel` (or the one named, for a message sent earlier)."""
    name = name or provider_name(channel)
    cls = provider_class(name)
    if channel not in cls.channels:
        raise ValueError(f"No {channel} provider named {name!r}")
    return cls(channel)
