"""A template's content filled with sample data, safe to show inside the admin page.

Placeholders are ``{{ name }}`` words, filled by plain substitution from a dict: no
template language runs, so template content can neither read server data nor loop or
call anything. Sample values are HTML-escaped in HTML, and the finished HTML goes
through the same sanitizer as a sent message's (:mod:`msglog.rules.content`) before it is
shown in a sandboxed iframe (no scripts, no same origin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.safestring import SafeString

from msglog.rules.content import html_document
from msglog.rules.kinds import Channel
from msglog.rules.segments import count_segments, length_in_units
from templates_app.rendering import placeholders, render

SAMPLE_DATA: dict[str, str] = {
    "first_name": "Jane",
    "last_name": "Doe",
    "name": "Jane Doe",
    "appointment_date": "Tuesday, March 4",
    "appointment_time": "10:30 AM",
    "practitioner": "Dr. Rivera",
    "amount": "$120.00",
    "invoice_number": "INV-00042",
    "due_date": "Tuesday, March 18",
    "link": "https://example.com/r/sample",
    "unsubscribe_link": "https://example.com/u/sample",
}


def fill(text: str, data: dict[str, str], *, escape: bool = False) -> str:
    """Replace each ``{{ name }}`` with its value; a name without a value stays as written."""
    return render(text, data, escape=escape, keep_missing=True)


@dataclass(frozen=True)
class Preview:
    """What a recipient would see, with sample data in the placeholders."""

    channel: str
    subject: str
    text: str
    document: SafeString | str  # the sanitized HTML as a whole page; "" without HTML
    segments: int = 0
    encoding: str = ""
    length: int = 0  # septets (GSM-7) or UTF-16 units (UCS-2), for SMS
    missing: list[str] = field(default_factory=list)  # placeholders without a sample value


def preview(content, channel: str, data: dict[str, str] | None = None) -> Preview:
    """Fill `content`'s subject, text and HTML (a template or one of its versions)."""
    data = {**SAMPLE_DATA, **(data or {})}
    used = placeholders(f"{content.subject}\n{content.text}\n{content.html}")
    text = fill(content.text, data)
    segments, encoding, length = 0, "", 0
    if channel == Channel.SMS:
        segments, encoding = count_segments(text)
        length = length_in_units(text)
    return Preview(
        channel=channel,
        subject=fill(content.subject, data),
        text=text,
        document=html_document(fill(content.html, data, escape=True)) if content.html else "",
        segments=segments,
        encoding=encoding,
        length=length,
        missing=[name for name in used if name not in data],
    )
