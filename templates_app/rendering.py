"""Filling a template's ``{{ name }}`` placeholders: the one place that renders content.

No template language runs on a company's text: a placeholder is a name between double
braces, replaced by its value (HTML-escaped in HTML bodies). Nothing else is evaluated.
"""

from __future__ import annotations

import html
import re

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """The placeholder names in `text`, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def render(
    text: str, context: dict[str, object], *, escape: bool = False, keep_missing: bool = False
) -> str:
    """Replace each ``{{ name }}`` with its value from `context`.

    A name without a value becomes empty (what a recipient must never see is the
    braces), or stays as written with `keep_missing` (a preview shows what is missing).
    """

    def value(match: re.Match) -> str:
        found = context.get(match.group(1))
        if found is None:
            return match.group(0) if keep_missing else ""
        return html.escape(str(found)) if escape else str(found)

    return PLACEHOLDER.sub(value, text)
