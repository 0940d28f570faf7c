"""Our own open and click tracking, for email sent over SMTP.

SMTP relays report nothing after they accept a message, so when a company enables
tracking, the HTML we hand to the relay gets an open pixel and its links point to our
redirect (:func:`html_for_sending`, called as the message is handed over). The stored
body stays the message as written: instrumenting is deterministic (the tokens are
signed, not random), so the stored body plus :func:`instrument` is exactly what was
sent, and viewing a message in the log never fires its own pixel.

Tokens are signed with the SECRET_KEY (django.core.signing, its own salt): they cannot
be guessed or altered, and they name the message by its public id and a link by its
position among the message's own links. The redirect goes only to a link that is in the
stored message: there is no open redirect, whatever the token says.

An open or click is stored as a report and applied by a worker like any provider's
(msglog/services/inbound_reports.py); engagement counts as proof of delivery (statuses.derive).
One open per message and one click per link are stored: later ones would change
nothing, since the stage times are the earliest ones.
"""

from __future__ import annotations

import html
import re

from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest
from django.urls import reverse

from msglog.models import Message, StatusEvent
from msglog.rules.kinds import Channel
from msglog.services import inbound_reports

# Tokens already sent in emails were signed with this salt: it never changes.
SALT = "msglog.webhooks.tracking"
#: Providers whose email we track ourselves; ESPs report opens and clicks themselves.
TRACKED_PROVIDERS = frozenset({"smtp"})
LINK = re.compile(
    r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'<>\s]+)\2""", re.IGNORECASE | re.DOTALL
)


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def token_for(public_id: str, link: int | None = None) -> str:
    return _signer().sign_object([public_id] if link is None else [public_id, link])


def read_token(token: str) -> tuple[str, int | None]:
    """(public id, link position or None); Http404 for anything not signed by us."""
    try:
        value = _signer().unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        raise Http404("Unknown link.") from None
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise Http404("Unknown link.")
    link = value[1] if len(value) > 1 else None
    if link is not None and not isinstance(link, int):
        raise Http404("Unknown link.")
    return value[0], link


def links_of(body_html: str) -> list[str]:
    """The message's own http(s) links, in order of first appearance, each once."""
    seen: dict[str, None] = {}
    for match in LINK.finditer(body_html or ""):
        seen.setdefault(html.unescape(match.group(3)), None)
    return list(seen)


def instrument(public_id: str, body_html: str) -> str:
    """The HTML with tracked links and an open pixel (deterministic for one message)."""
    base = settings.PUBLIC_BASE_URL
    positions = {url: i for i, url in enumerate(links_of(body_html))}

    def tracked(match: re.Match) -> str:
        position = positions[html.unescape(match.group(3))]
        url = base + reverse("track-click", kwargs={"token": token_for(public_id, position)})
        return f"{match.group(1)}{match.group(2)}{url}{match.group(2)}"

    body = LINK.sub(tracked, body_html)
    pixel_url = base + reverse("track-open", kwargs={"token": token_for(public_id)})
    pixel = f'<img src="{pixel_url}" width="1" height="1" alt="" style="display:none">'
    closing = re.search(r"</body\s*>", body, re.IGNORECASE)
    if closing:
        return body[: closing.start()] + pixel + body[closing.start() :]
    return body + pixel


def html_for_sending(message: Message) -> str:
    """The HTML to hand to the provider: instrumented when the company tracks SMTP email."""
    if (
        message.channel == Channel.EMAIL
        and message.body_html
        and message.provider in TRACKED_PROVIDERS
        and message.company.tracking_enabled
    ):
        return instrument(message.public_id, message.body_html)
    return message.body_html


def engagement_report(
    public_id: str, status: str, request: HttpRequest, link: int | None = None
) -> inbound_reports.Incoming:
    return inbound_reports.Incoming(
        source=StatusEvent.Source.TRACKING,
        event=status,
        status=status,
        public_id=public_id,
        payload={
            "user_agent": request.headers.get("User-Agent", "")[:300],
            **({"link": link} if link is not None else {}),
        },
        key_extra=("link", link) if link is not None else (),
    )
