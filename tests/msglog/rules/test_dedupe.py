"""The same report always gets the same dedupe key, whether Python or the database makes it."""

from __future__ import annotations

import pytest
from django.db import connection

from msglog.rules.dedupe import dedupe_key, dedupe_key_sql


def test_a_report_delivered_twice_has_one_key_and_a_different_report_another():
    first = dedupe_key("SM123", "delivered", "2026-11-23T21:00:00+00:00")
    assert first == dedupe_key("SM123", "delivered", "2026-11-23T21:00:00+00:00")
    assert first != dedupe_key("SM123", "sent", "2026-11-23T21:00:00+00:00")
    assert dedupe_key("a", "bc") != dedupe_key("ab", "c")  # parts never run together


@pytest.mark.django_db
def test_the_sql_dedupe_key_is_the_python_one():
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL expression")
    parts = ("AbC-_123", "queued", "2026-11-23T21:00:00.123456+00:00", "é ✓ \x1f")
    sql = dedupe_key_sql("%s", "%s", "%s", "%s")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", parts)
        assert cursor.fetchone()[0] == dedupe_key(*parts)
