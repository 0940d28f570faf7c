"""Filling a template's ``{{ name }}`` placeholders: the one place that renders content.

No template language runs on a company's text: a placeholder is a name between double
braces, replaced by its value (HTML-escaped in HTML bodies). Nothing else is evaluated.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """The placeholder names in `text`, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def render(
    text: str, context: Mapping[str, object], *, escape: bool = False, keep_missing: bool = False
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


def compile_text(text: str, *, escape: bool = False) -> Callable[[Mapping[str, object]], str]:
    """`render` of one text, prepared once for many contexts (a bulk send).

    The same result as ``render(text, context, escape=escape)``, without scanning the
    text again for each recipient.
    """
    parts = PLACEHOLDER.split(text)  # literal, name, literal, name, ..., literal
    if len(parts) == 1:
        return lambda context: text
    head, names, literals = parts[0], parts[1::2], parts[2::2]
    pairs = list(zip(names, literals, strict=True))
    quote = html.escape if escape else str

    def fill(context: Mapping[str, object]) -> str:
        out = [head]
        for name, literal in pairs:
            found = context.get(name)
            if found is not None:
                out.append(quote(str(found)))
            out.append(literal)
        return "".join(out)

    return fill
