"""Moments for test data, always taken relative to when the test runs.

Anything the product compares with "now" (retention, the soft-bounce window, expiry,
scheduled sends, the age of a provider's report) must be built from these, never written
as a literal date: a literal is right the day it is written and wrong some weeks later.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone


def ago(**delta: float) -> datetime:
    """This long before now, to the second (providers report whole seconds)."""
    return timezone.now().replace(microsecond=0) - timedelta(**delta)


def ahead(**delta: float) -> datetime:
    """This long after now, to the second."""
    return timezone.now().replace(microsecond=0) + timedelta(**delta)


def iso_z(at: datetime) -> str:
    """`at` as the ESPs write it: ISO 8601 in UTC with milliseconds and a Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
