"""Full-text search on PostgreSQL: a tsvector per trajectory with a GIN index.

SQLite has its FTS5 table (0002_workbench_search). On PostgreSQL the queue's search scanned every
turn and step with ILIKE; this gives it an index of the same name, written by annotate.ingest.writer
(``to_tsvector('simple', annotate.search.search_text(...))``) and queried with each word as a
prefix. A trajectory's row goes with it (ON DELETE CASCADE). Nothing happens on other databases.
"""

from django.db import migrations

SEARCH_TABLE = "annotate_trajectory_search"

CREATE = [
    f"""CREATE TABLE IF NOT EXISTS {SEARCH_TABLE} (
        trajectory_id bigint PRIMARY KEY REFERENCES annotate_trajectory (id) ON DELETE CASCADE
            DEFERRABLE INITIALLY DEFERRED,
        document tsvector NOT NULL)""",
    f"CREATE INDEX IF NOT EXISTS {SEARCH_TABLE}_gin ON {SEARCH_TABLE} USING gin (document)",
    # Index what is already there (close to annotate.search.search_text, which takes over on save).
    f"""INSERT INTO {SEARCH_TABLE} (trajectory_id, document)
        SELECT t.id, to_tsvector('simple',
               coalesce((SELECT string_agg(u."user", E'\\n' ORDER BY u."index") FROM annotate_turn u
                         WHERE u.trajectory_id = t.id), '')
               || E'\\n' ||
               coalesce((SELECT string_agg(concat_ws(' ', s.name, s.arguments::text, s.text, s.note), E'\\n'
                                           ORDER BY s.turn_index, s.position)
                         FROM annotate_step s WHERE s.trajectory_id = t.id), ''))
        FROM annotate_trajectory t
        ON CONFLICT (trajectory_id) DO NOTHING""",
]


def create_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for sql in CREATE:
        schema_editor.execute(sql)


def drop_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP TABLE IF EXISTS {SEARCH_TABLE}")


class Migration(migrations.Migration):

    dependencies = [
        ("annotate", "0003_ordered_json"),
    ]

    operations = [
        migrations.RunPython(create_search_index, drop_search_index),
    ]
