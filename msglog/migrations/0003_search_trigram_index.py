"""A trigram index for substring search over recipient name, address and subject.

PostgreSQL only (pg_trgm); SQLite scans, which is fine at embedded-mode sizes. The
indexed expression is exactly the one msglog.search.SEARCH_EXPRESSION builds, so the
planner can use it for `LIKE '%...%'`.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEX_SQL = """
CREATE INDEX IF NOT EXISTS msg_search_trgm ON msglog_message USING gin (
    (UPPER(("to_name" || ' ' || "to_address" || ' ' || "subject")::text)) gin_trgm_ops
)
"""


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX_SQL)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS msg_search_trgm")


class Migration(migrations.Migration):
    dependencies = [("msglog", "0002_rollups_and_column_preferences")]

    operations = [
        TrigramExtension(),
        migrations.RunPython(create_index, drop_index),
    ]
