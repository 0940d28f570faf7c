"""The log's models: public ids and the indexes an insert pays for."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from msglog.models import Message, new_public_id, new_public_ids

URL_SAFE = set(string.ascii_letters + string.digits + "-_")


def test_public_ids_are_url_safe_unguessable_and_distinct():
    ids = [*new_public_ids(5_000), new_public_id()]
    assert len(set(ids)) == len(ids)
    for public_id in ids:
        assert len(public_id) == 24 and set(public_id) <= URL_SAFE
    # After the 8-character time prefix, 16 random characters (96 bits) differ every time.
    randoms = {public_id[8:] for public_id in ids}
    assert len(randoms) == len(ids)
    assert len({public_id[8] for public_id in ids}) > 32  # not a counter: spread out


def test_public_ids_sort_by_the_time_they_were_made_in_any_collation():
    start = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    moments = [start + timedelta(milliseconds=10 * i) for i in range(200)]
    moments += [datetime(2020, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, tzinfo=UTC)]
    moments.sort()
    prefixes = [new_public_ids(1, at)[0][:8] for at in moments]
    # Digits and lower-case letters only, at a fixed width: byte order is time order, and
    # so is the order of a natural-language collation.
    assert all(re.fullmatch(r"[0-9a-z]{8}", p) for p in prefixes)
    assert prefixes == sorted(prefixes) and len(set(prefixes)) == len(prefixes)
    assert new_public_ids(1, start)[0] < new_public_ids(1, start + timedelta(seconds=1))[0]


@pytest.mark.django_db
def test_public_id_is_unique_without_a_like_index():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's indexes")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexdef LIKE %s",
            [Message._meta.db_table, "%(public_id%"],
        )
        indexes = dict(cursor.fetchall())
    assert list(indexes) == ["msglog_message_public_id_key"]
    assert "UNIQUE" in indexes["msglog_message_public_id_key"]
