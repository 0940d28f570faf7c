"""SMS segments: what an SMS will cost, decided by GSM 03.38 in one function."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from msglog.rules.segments import (
    GSM_7,
    GSM_BASIC,
    GSM_EXTENSION,
    UCS_2,
    count_segments,
    is_gsm7,
    length_in_units,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", (0, GSM_7)),  # nothing to send, nothing to charge
        ("a", (1, GSM_7)),
        ("a" * 160, (1, GSM_7)),
        ("a" * 161, (2, GSM_7)),  # 153 + 8
        ("a" * 306, (2, GSM_7)),
        ("a" * 307, (3, GSM_7)),
        ("€" * 80, (1, GSM_7)),  # 160 septets
        ("€" * 81, (2, GSM_7)),
        ("a" * 159 + "^", (2, GSM_7)),  # '^' is two septets: 161
        ("a" * 158 + "^", (1, GSM_7)),
        ("Ünïcode", (1, UCS_2)),  # 'ï' is not in the GSM table
        ("ł" * 70, (1, UCS_2)),
        ("ł" * 71, (2, UCS_2)),  # 67 + 4
        ("ł" * 134, (2, UCS_2)),
        ("ł" * 135, (3, UCS_2)),
        ("😀" * 35, (1, UCS_2)),  # an emoji is two UTF-16 units: 70
        ("😀" * 36, (2, UCS_2)),
        ("a" * 159 + "😀", (3, UCS_2)),  # one emoji turns 160 septets into 161 units of UCS-2
        (
            "Hello Jane, your visit is confirmed for 3 Nov at 10:00. Reply STOP to opt out.",
            (1, GSM_7),
        ),
    ],
)
def test_known_counts(text, expected):
    assert count_segments(text) == expected


def test_an_escape_sequence_never_straddles_two_parts():
    # 152 plain septets then '€': the escape and the '€' cannot share part 1's last septet.
    text = "a" * 152 + "€" + "a" * 152
    assert length_in_units(text) == 306  # would fit 2 parts of 153 if split
    assert count_segments(text) == (3, GSM_7)


def test_a_surrogate_pair_never_straddles_two_parts():
    text = "ł" * 66 + "😀" + "ł" * 66  # 134 units; the emoji cannot split across part 1's end
    assert count_segments(text) == (3, UCS_2)


def test_the_gsm_tables_are_the_standards():
    assert len(GSM_BASIC) == 127  # 128 codes, minus the escape to the extension table
    assert len(GSM_EXTENSION) == 9 + 1  # '^{}\\[~]|€' and form feed
    assert not GSM_BASIC & GSM_EXTENSION
    assert is_gsm7("@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà{}[]~|\\^€")
    assert not is_gsm7("ç")  # only the capital Ç is in the table
    assert not is_gsm7("\x1b")  # the escape itself is not text


non_empty = st.text(min_size=1, max_size=600)
gsm_text = st.text(alphabet=sorted(GSM_BASIC | GSM_EXTENSION), min_size=1, max_size=600)


@given(non_empty)
def test_a_non_empty_text_is_at_least_one_segment(text):
    segments, encoding = count_segments(text)
    assert segments >= 1
    assert encoding == (GSM_7 if is_gsm7(text) else UCS_2)


@given(non_empty)
def test_segments_stay_within_the_part_size_bounds(text):
    segments, encoding = count_segments(text)
    units = length_in_units(text)
    single, per_part = (160, 153) if encoding == GSM_7 else (70, 67)
    if units <= single:
        assert segments == 1
    else:
        # Each part is full but for at most one unit left by an unsplittable pair.
        assert math.ceil(units / per_part) <= segments <= math.ceil(units / (per_part - 1))


@given(non_empty, st.characters())
def test_adding_a_character_never_makes_a_text_cheaper(text, extra):
    assert count_segments(text + extra).segments >= count_segments(text).segments


@given(gsm_text)
def test_gsm_text_costs_one_septet_a_character_or_two_for_the_extension(text):
    extension = sum(ch in GSM_EXTENSION for ch in text)
    assert length_in_units(text) == len(text) + extension
    assert count_segments(text).encoding == GSM_7
