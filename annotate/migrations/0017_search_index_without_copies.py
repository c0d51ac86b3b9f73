"""SQLite's full-text index without a copy of every text (FTS5 ``content=''``).

The index kept a verbatim copy of each trajectory's search text beside its tokens: about 1.3 KB a
trajectory, as much again as its steps, written by every import and read by no query (the queue
asks only which trajectories match). A contentless index keeps the tokens alone: an import writes
a third less into SQLite, and its index row costs 6 us instead of 18 (measured on the
texts of 20,000 of the import benchmark's trajectories).

SQLite 3.40 cannot delete from a contentless index, so a document is never replaced in place:
an imported trajectory's entry has its id as rowid, and each later save of it writes a new entry
under a rowid of its own (``-document``, numbered by ``annotate_search_document``, which maps each
saved trajectory to its current entry). The search (``TrajectoryQuerySet.search``) takes an
entry under the trajectory's id only while the trajectory has no saved entry, and a saved entry
only while it is the trajectory's current one; a deleted trajectory's entries match no row.
Entries so superseded stay in the index (about 50 bytes each, with ``detail=none``). Nothing to
do on other databases; going back rebuilds the copy from the turn and step rows.
"""

from django.db import migrations

SEARCH_TABLE = "annotate_trajectory_search"
SEARCH_DOCUMENTS = "annotate_search_document"
TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2', columnsize = 0, detail = none"

FORWARDS = [
    f"CREATE VIRTUAL TABLE {SEARCH_TABLE}_rebuilt USING fts5(text, content = '', {TOKENIZE})",
    f"INSERT INTO {SEARCH_TABLE}_rebuilt (rowid, text) SELECT rowid, text FROM {SEARCH_TABLE}",
    f"DROP TRIGGER IF EXISTS {SEARCH_TABLE}_delete",
    f"DROP TABLE {SEARCH_TABLE}",
    f"ALTER TABLE {SEARCH_TABLE}_rebuilt RENAME TO {SEARCH_TABLE}",
    # AUTOINCREMENT: a document number is never handed out twice, so a new entry never shares a
    # rowid with an old one (whose tokens the index still holds).
    f"""CREATE TABLE {SEARCH_DOCUMENTS} (document integer NOT NULL PRIMARY KEY AUTOINCREMENT,
        trajectory_id bigint NOT NULL UNIQUE)""",
    f"""CREATE TRIGGER {SEARCH_TABLE}_delete AFTER DELETE ON annotate_trajectory
        BEGIN DELETE FROM {SEARCH_DOCUMENTS} WHERE trajectory_id = old.id; END""",
]

BACKWARDS = [
    f"CREATE VIRTUAL TABLE {SEARCH_TABLE}_rebuilt USING fts5(text, {TOKENIZE})",
    # (the text as migration 0002 first indexed it: the same words as annotate.search.search_text)
    f"""INSERT INTO {SEARCH_TABLE}_rebuilt (rowid, text)
        SELECT t.id,
               coalesce((SELECT group_concat(u.user, char(10)) FROM annotate_turn u WHERE u.trajectory_id = t.id), '')
               || char(10) ||
               coalesce((SELECT group_concat(s.name || ' ' || coalesce(s.arguments, '') || ' ' || s.text || ' ' || s.note,
                                             char(10))
                         FROM annotate_step s WHERE s.trajectory_id = t.id), '')
        FROM annotate_trajectory t""",
    f"DROP TRIGGER IF EXISTS {SEARCH_TABLE}_delete",
    f"DROP TABLE {SEARCH_DOCUMENTS}",
    f"DROP TABLE {SEARCH_TABLE}",
    f"ALTER TABLE {SEARCH_TABLE}_rebuilt RENAME TO {SEARCH_TABLE}",
    f"""CREATE TRIGGER {SEARCH_TABLE}_delete AFTER DELETE ON annotate_trajectory
        BEGIN DELETE FROM {SEARCH_TABLE} WHERE rowid = old.id; END""",
]


def _run(schema_editor, statements: list[str]) -> None:
    if schema_editor.connection.vendor != "sqlite":
        return
    with schema_editor.connection.cursor() as c:
        c.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [SEARCH_TABLE])
        if c.fetchone() is None:  # (an SQLite without FTS5: the portable search is used)
            return
        for sql in statements:
            c.execute(sql)


def forwards(apps, schema_editor):
    _run(schema_editor, FORWARDS)


def backwards(apps, schema_editor):
    _run(schema_editor, BACKWARDS)


class Migration(migrations.Migration):

    dependencies = [
        ("annotate", "0016_no_duplicate_foreign_key_indexes"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
