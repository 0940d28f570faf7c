"""Spreadsheet cells that can never run: the one rule against formula injection.

Exports (CSV and Excel) and the audit log's CSV write every text a person or provider
could have typed through :func:`neutralize`; rows the database formats use the same test
as SQL regular expressions (:data:`SQL_FORMULA`, :data:`SQL_PLAIN_NUMBER`).
"""

from __future__ import annotations

import re

# OWASP "CSV Injection": a cell a spreadsheet may read as a formula or a DDE call starts
# with one of these; full-width forms are folded to them by some spreadsheets.
FORMULA_TRIGGERS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
# A number written as text ("-12", "+14155550123") is data, not a formula: kept as it is.
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?")
# The same two tests as PostgreSQL regular expressions, for rows the database formats.
SQL_FORMULA = "^ *[" + "".join(sorted(FORMULA_TRIGGERS - {"-"})) + "-]"
SQL_PLAIN_NUMBER = "^[+-]?[0-9]+([.,][0-9]+)?$"
FIRST_CHARACTERS = sorted(FORMULA_TRIGGERS | {" "})


def neutralize(value: str) -> str:
    """A text cell no spreadsheet will evaluate: a leading quote before a formula trigger."""
    if not value:
        return value
    first = value[0]
    if first == " ":  # spreadsheets skip leading spaces before they look for a formula
        first = value.lstrip(" ")[:1]
    if first in FORMULA_TRIGGERS and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value
