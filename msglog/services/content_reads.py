"""Who read a message's content: every read by a person is in the audit log."""

from __future__ import annotations

from django.http import HttpRequest

from companies import audit
from msglog.models import Message


def content_viewed(request: HttpRequest, message: Message, part: str) -> None:
    """Record in the audit log that a person read a message's content (`part`: what they saw)."""
    audit.record(
        audit.Action.CONTENT_VIEWED,
        f"Read the {part} of message {message.public_id}",
        request=request,
        company=message.company_id,
        details={"message": str(message.public_id), "part": part},
    )
