"""A message's content as sent, made safe to show to the people who may read it.

Email HTML comes from templates and contacts' data, so it is treated as hostile: it is
sanitized with nh3 (an allowlist: no scripts, no event handlers, no forms, no frames)
and then shown only inside a sandboxed iframe, from its own URL, under a Content
Security Policy that forbids scripts and every load except images.
SMS text and plain-text email are never HTML: templates show them escaped.

Every read of content by a person passes through :func:`content_viewed`, the one place
the audit log records it.
"""

from __future__ import annotations

import nh3
from django.utils.html import format_html
from django.utils.safestring import SafeString

# nh3's defaults plus what email layouts are made of (tables, fonts, inline styles).
# <style> blocks are kept: CSS cannot run code, and the CSP blocks what it could load
# except images. Scripts, forms, frames, objects, <base> and <meta> are never allowed.
ALLOWED_TAGS = nh3.ALLOWED_TAGS | {"font", "style", "tfoot", "center"}
_EMAIL_ATTRIBUTES = {
    "align",
    "bgcolor",
    "border",
    "cellpadding",
    "cellspacing",
    "class",
    "color",
    "dir",
    "height",
    "id",
    "lang",
    "role",
    "style",
    "title",
    "valign",
    "width",
}
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": _EMAIL_ATTRIBUTES,
    "a": {"href", "hreflang", "name"},
    "font": {"face", "size", "color"},
    "img": {"src", "alt", "width", "height", "align", "border"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel", "sms", "cid", "data"}
# Tags removed together with their text (the rest of a disallowed tag's text is kept).
CLEAN_CONTENT_TAGS = {"script", "title", "noscript", "template", "iframe", "object", "svg"}

# The iframe's document: a base that opens links in a new window, which the sandbox
# (no allow-popups) refuses, so a click in the preview can never count as the
# recipient's click on a tracked link, nor navigate anywhere.
_DOCUMENT = (
    '<!doctype html><html><head><meta charset="utf-8">'
    '<base target="_blank">'
    "<style>body{{margin:12px;font-family:system-ui,sans-serif;color:#111;"
    "background:#fff;overflow-wrap:anywhere}}img{{max-width:100%;height:auto}}</style>"
    "</head><body>{}</body></html>"
)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    """Keep data: URLs for inline images only; a data: link could carry a whole page."""
    if attribute == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


def sanitize_html(html: str) -> str:
    """Email HTML with everything that could run, submit, embed or navigate removed."""
    return nh3.clean(
        html or "",
        tags=ALLOWED_TAGS,
        clean_content_tags=CLEAN_CONTENT_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def html_document(html: str) -> SafeString:
    """The whole document the content iframe shows: sanitized HTML in a plain page."""
    return format_html(_DOCUMENT, SafeString(sanitize_html(html)))


def content_security_policy(remote_images: bool = False) -> str:
    """What the content URL answers with.

    `sandbox` applies even when the URL is opened on its own; frame-ancestors 'self'
    (with X-Frame-Options SAMEORIGIN) lets only our pages frame it. Remote images stay
    blocked unless the reader asks for them: loading an email's tracking pixel from the
    log would record an "opened" that the recipient never did.
    """
    return "; ".join(
        [
            "default-src 'none'",
            "style-src 'unsafe-inline'",
            "img-src data: https:" if remote_images else "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
            "sandbox",
        ]
    )
