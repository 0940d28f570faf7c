"""The dedupe key of a status event: one rule, in Python and as SQL.

A report's key comes from its content (provider message id, status, provider time, and
the provider's event id where that is stable), so the same report delivered twice is
stored once. Events written one by one use :func:`dedupe_key`; events written set-wise by
the database (a bulk send's first events, a batch's cancel) use :func:`dedupe_key_sql`,
which gives the same key (a test compares them).
"""

from __future__ import annotations

import hashlib


def dedupe_key(*parts: object) -> str:
    """A stable key from a report's content: the same report always gives the same key."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def dedupe_key_sql(*parts: str) -> str:
    """:func:`dedupe_key` as a PostgreSQL expression, for events written set-wise: `parts`
    are SQL text expressions (columns, placeholders), never NULL."""
    joined = " || chr(31) || ".join(f"({part})" for part in parts)
    return f"encode(sha256(convert_to({joined}, 'UTF8')), 'hex')"
