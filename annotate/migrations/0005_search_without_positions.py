"""SQLite's full-text index without token positions (FTS5 ``detail=none``).

The queue's search asks for every word as a prefix (``annotate.search.fts_query``), never a
phrase or NEAR, so the positions FTS5 kept for each token were written by every import and
save and read by no query: without them an import writes about 6 % faster and the index is
smaller. The entries are copied over as they are; nothing to do on other databases.
"""

from django.db import migrations

SEARCH_TABLE = "annotate_trajectory_search"


def _rebuild(schema_editor, detail: str) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as c:
        c.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [SEARCH_TABLE])
        if c.fetchone() is None:  # (an SQLite without FTS5: the portable search is used)
            return
        c.execute(f"""CREATE VIRTUAL TABLE {SEARCH_TABLE}_rebuilt USING fts5(
            text, tokenize = 'unicode61 remove_diacritics 2', columnsize = 0, detail = {detail})""")
        c.execute(f"INSERT INTO {SEARCH_TABLE}_rebuilt (rowid, text) SELECT rowid, text FROM {SEARCH_TABLE}")
        c.execute(f"DROP TRIGGER IF EXISTS {SEARCH_TABLE}_delete")
        c.execute(f"DROP TABLE {SEARCH_TABLE}")
        c.execute(f"ALTER TABLE {SEARCH_TABLE}_rebuilt RENAME TO {SEARCH_TABLE}")
        c.execute(f"""CREATE TRIGGER {SEARCH_TABLE}_delete AFTER DELETE ON annotate_trajectory
            BEGIN DELETE FROM {SEARCH_TABLE} WHERE rowid = old.id; END""")


def forwards(apps, schema_editor):
    _rebuild(schema_editor, "none")


def backwards(apps, schema_editor):
    _rebuild(schema_editor, "full")


class Migration(migrations.Migration):

    dependencies = [
        ("annotate", "0004_postgres_search"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
