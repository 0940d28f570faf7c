"""Message.public_id: unique by a named constraint, without the LIKE index.

`unique=True` on a CharField gives PostgreSQL a second index (varchar_pattern_ops, for
`LIKE 'abc%'`) that no query uses, and every message inserted pays for it. The unique
constraint PostgreSQL already has is kept under its name, so nothing is rebuilt: the
database only drops the LIKE index (SQLite never had one).
"""

from django.db import migrations, models

import msglog.models

LIKE_INDEX = "msglog_message_public_id_5a53b285_like"


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {LIKE_INDEX}")


def create_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {LIKE_INDEX} "
            "ON msglog_message (public_id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("msglog", "0007_batch_progress_and_uploads")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="public_id",
                    field=models.CharField(
                        default=msglog.models.new_public_id, editable=False, max_length=24
                    ),
                ),
                migrations.AddConstraint(
                    model_name="message",
                    constraint=models.UniqueConstraint(
                        fields=("public_id",), name="msglog_message_public_id_key"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_like_index, create_like_index)],
        ),
    ]
