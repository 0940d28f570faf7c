"""Recipient addresses: a phone number as E.164, an email address as sends use it.

One rule for every way in (a send, a batch upload, company settings, the API): an address
that :func:`normalize_address` turns into None is an invalid recipient.
"""

from __future__ import annotations

import functools
import re

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from msglog.rules.kinds import Channel


@functools.lru_cache(maxsize=65_536)
def normalize_phone(number: str, region: str) -> str | None:
    """E.164 for a valid number (read in the company's default region), else None.

    Parsing and validating a number costs ~20 µs; the verdicts are remembered, as the
    same patients and clients get message after message (and a file repeats numbers).
    """
    try:
        parsed = phonenumbers.parse(number, region or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(address: str) -> str | None:
    """The address with its domain in lower case, if Django's `validate_email` accepts it.

    The same test as the validator's, with each domain's verdict remembered: a bulk send
    names the same few domains thousands of times.
    """
    address = address.strip()
    if not address or "@" not in address or len(address) > 320:
        return None
    local, _, domain = address.rpartition("@")
    if not _EMAIL_USER_MATCH(local) or not _valid_domain(domain):
        return None
    return f"{local}@{domain.lower()}"


# Django's own user-part pattern, compiled here once: the validator keeps it behind a lazy
# object whose every use costs more than the match itself.
_EMAIL_USER_MATCH = re.compile(
    validate_email.user_regex.pattern, validate_email.user_regex.flags
).match


@functools.lru_cache(maxsize=4096)
def _valid_domain(domain: str) -> bool:
    try:
        validate_email(f"user@{domain}")
    except ValidationError:
        return False
    return True


def normalize_address(channel: str, address: str, region: str) -> str | None:
    if channel == Channel.SMS:
        return normalize_phone(address, region)
    return normalize_email(address)
