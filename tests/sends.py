"""A message sent the way Compose, a batch or the API sends one: through the send service."""

from __future__ import annotations

from msglog.services import sending
from msglog.services.sending import Content, Recipient


def sms(company, to: str, text: str = "Your appointment is tomorrow at 10:00.", **kwargs):
    return sending.send(
        company,
        channel="sms",
        recipient=Recipient(address=to, name="Pat Lee"),
        category="transactional",
        message_type="reminder",
        content=Content(text=text),
        **kwargs,
    )


def email(company, to: str, **kwargs):
    return sending.send(
        company,
        channel="email",
        recipient=Recipient(address=to, name="Pat Lee"),
        category=kwargs.pop("category", "transactional"),
        message_type="confirmation",
        content=Content(
            subject="Booked, {{ first_name }}",
            text="See you {{ first_name }}.",
            html="<p>See you {{ first_name }}.</p>",
        ),
        **kwargs,
    )
