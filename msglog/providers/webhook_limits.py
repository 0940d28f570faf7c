"""Size limits on webhook bodies: a request over the limit is refused before it is read."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

#: Twilio's form posts are a few hundred bytes; anything near this is not Twilio.
TWILIO_MAX_BYTES = 32 * 1024


def max_bytes() -> int:
    return settings.WEBHOOK_MAX_BYTES


def body_too_large(request: HttpRequest, limit: int | None = None) -> bool:
    """Whether the declared body is over the limit (a missing or bad length is left to
    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE check, which answers 400)."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True
    return length > (limit if limit is not None else max_bytes())
