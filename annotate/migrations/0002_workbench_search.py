"""Workbench: revision status, a case-type index for the queue, and the full-text search index.

The search index is an SQLite FTS5 table (rowid = trajectory id) written by annotate.ingest.writer;
a trigger drops a trajectory's entry when the trajectory is deleted. On other databases (or an
SQLite built without FTS5) nothing is created and the queue falls back to a portable scan.
"""

from django.db import migrations, models

SEARCH_TABLE = "annotate_trajectory_search"

CREATE = [
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5(
        text, tokenize = 'unicode61 remove_diacritics 2', columnsize = 0)""",
    f"""CREATE TRIGGER IF NOT EXISTS {SEARCH_TABLE}_delete AFTER DELETE ON annotate_trajectory
        BEGIN DELETE FROM {SEARCH_TABLE} WHERE rowid = old.id; END""",
    # Index what is already there (close to annotate.search.search_text, which takes over on save).
    f"""INSERT INTO {SEARCH_TABLE}(rowid, text)
        SELECT t.id,
               coalesce((SELECT group_concat(u.user, char(10)) FROM annotate_turn u WHERE u.trajectory_id = t.id), '')
               || char(10) ||
               coalesce((SELECT group_concat(s.name || ' ' || coalesce(s.arguments, '') || ' ' || s.text || ' ' || s.note,
                                             char(10))
                         FROM annotate_step s WHERE s.trajectory_id = t.id), '')
        FROM annotate_trajectory t""",
]
DROP = [f"DROP TRIGGER IF EXISTS {SEARCH_TABLE}_delete", f"DROP TABLE IF EXISTS {SEARCH_TABLE}"]


def _fts5_available(cursor) -> bool:
    try:
        cursor.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x)")
        cursor.execute("DROP TABLE temp.fts5_probe")
        return True
    except Exception:  # noqa: BLE001 - an SQLite without FTS5 raises OperationalError
        return False


def create_search_index(apps, schema_editor):
    conn = schema_editor.connection
    if conn.vendor != "sqlite":
        return
    with conn.cursor() as c:
        if not _fts5_available(c):
            return
        for sql in CREATE:
            c.execute(sql)


def drop_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as c:
        for sql in DROP:
            c.execute(sql)


class Migration(migrations.Migration):

    dependencies = [
        ("annotate", "0002_pairs_models"),
    ]

    operations = [
        migrations.AddField(
            model_name="revision",
            name="status",
            field=models.CharField(blank=True, default="", max_length=20),
        ),
        migrations.AddIndex(
            model_name="trajectory",
            index=models.Index(fields=["project", "case_types_index"], name="traj_project_casetypes"),
        ),
        migrations.RunPython(create_search_index, drop_search_index),
    ]
