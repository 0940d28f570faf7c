"""How many SMS segments a text takes: the one place that decides GSM-7 vs UCS-2.

GSM 03.38: a text made only of the basic table's characters is sent in GSM-7, where a
character of the extension table (``^ { } [ ] ~ | \\ €`` and form feed) costs two septets
(an escape plus the character). One message holds 160 septets; a longer one is split
into parts of 153, because each part gives 7 septets to its concatenation header.

Any other character makes the whole text UCS-2 (UTF-16 on the wire): 70 code units in one
message, 67 per part. A character outside the Basic Multilingual Plane (most emoji) takes
two code units.

Neither an escape sequence nor a surrogate pair is ever split across two parts, so a
part may end one unit short; the count follows the packing phones and carriers use.

An empty text is 0 segments: there is nothing to send and nothing to charge.
"""

from __future__ import annotations

from typing import NamedTuple

GSM_7 = "GSM-7"
UCS_2 = "UCS-2"

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

# (one message, one part of a concatenated message), in septets or UTF-16 code units.
LIMITS = {GSM_7: (160, 153), UCS_2: (70, 67)}


class SegmentCount(NamedTuple):
    segments: int
    encoding: str  # GSM_7 or UCS_2


def is_gsm7(text: str) -> bool:
    """Whether every character of `text` has a GSM 03.38 encoding (basic or extension)."""
    return all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text)


def _costs(text: str, encoding: str) -> list[int]:
    """Each character's size in its encoding's units."""
    if encoding == GSM_7:
        return [2 if ch in GSM_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(costs: list[int], single: int, per_part: int) -> int:
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts


def count_segments(text: str) -> SegmentCount:
    """The number of SMS segments `text` takes and the encoding it is sent in."""
    encoding = GSM_7 if is_gsm7(text) else UCS_2
    single, per_part = LIMITS[encoding]
    return SegmentCount(_pack(_costs(text, encoding), single, per_part), encoding)


def length_in_units(text: str) -> int:
    """The text's length in septets (GSM-7) or UTF-16 code units (UCS-2), as it is sent."""
    encoding = GSM_7 if is_gsm7(text) else UCS_2
    return sum(_costs(text, encoding))
