"""The search index's rebuilds, without positions (0005) and without copies of the texts (0017), keep every
entry, the trigger and the search, both ways."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Written at migration 0004, whose turn and step tables are older than today's import (they have no
# ``extra`` column yet): the trajectory rows, their search entries, and their turn and step rows in
# plain SQL (0017's way back rebuilds the entries' texts from them).
SEED = """
from django.db import connection
from annotate.ingest.reader import parse_file
from annotate.ingest.writer import get_or_create_project, index_search_text
from annotate.models import Trajectory
from annotate.search import search_text

def insert(table, **given):
    with connection.cursor() as c:
        c.execute(f"PRAGMA table_info({table})")
        columns = [(name, kind) for _, name, kind, *_ in c.fetchall() if name != "id"]
        values = [given.get(name, 0 if kind.startswith(("int", "bool", "big")) else "") for name, kind in columns]
        c.execute(f"INSERT INTO {table} ({', '.join(repr(n) for n, _ in columns)}) VALUES "
                  f"({', '.join(['%s'] * len(columns))})", values)
p, _ = get_or_create_project("up")
rows = [b'{"turns": [{"user": "weather in Paris?", "steps": [{"kind": "tool_call", "name": "get_weather", '
        b'"arguments": {"city": "Paris"}, "call_id": "c"}, {"kind": "tool_result", "call_id": "c", "text": "18 C"}, '
        b'{"kind": "answer", "text": "HAT145 it is"}]}], "meta": {"external_id": "r%d"}}' % i for i in range(5)]
docs = [doc for _, doc in parse_file(b"\\n".join(rows), "up.jsonl").trajectories]
assert len(docs) == 5
for doc in docs:
    t = Trajectory.objects.create(project=p, external_id=doc.meta.external_id)
    index_search_text([(t.pk, search_text(doc))])
    turn = doc.turns[0]
    insert("annotate_turn", trajectory_id=t.pk, index=0, user=turn.user)
    for k, step in enumerate(turn.steps):
        insert("annotate_step", trajectory_id=t.pk, turn_index=0, position=k, kind=step.kind, text=step.text,
               name=step.name, call_id=step.call_id, ok=1, train=1,
               arguments='{"city": "Paris"}' if step.kind == "tool_call" else None)
"""

CHECK = """
from annotate.models import Trajectory
qs = Trajectory.objects.filter(project__slug="up")
print(qs.search("HAT1").count(), qs.search("get_weather paris").count(), qs.search("nothing").count())
qs.filter(pk=qs.order_by("id").values_list("id", flat=True)[0]).delete()
print(qs.search("HAT1").count())
"""

# The same with plain SQL, for the schemas before 0017 (today's search also reads the table of saved
# entries 0017 adds). At 0004 the models of later migrations (suggestions, overlap, ...) have no
# tables, so Django's delete collector cannot run; the row goes with plain SQL (foreign keys off),
# which is what the search index's trigger is about.
CHECK_RAW = """
from django.db import connection
from annotate.search import fts_query
c = connection.cursor()
def matches(q):
    c.execute("SELECT count(*) FROM annotate_trajectory_search WHERE annotate_trajectory_search MATCH %s", [fts_query(q)])
    return c.fetchone()[0]
print(matches("HAT1"), matches("get_weather paris"), matches("nothing"))
c.execute("PRAGMA foreign_keys = OFF")
c.execute("SELECT min(id) FROM annotate_trajectory")
(first,) = c.fetchone()
for table in ("annotate_step", "annotate_turn"):
    c.execute(f"DELETE FROM {table} WHERE trajectory_id = %s", [first])
c.execute("DELETE FROM annotate_trajectory WHERE id = %s", [first])
print(matches("HAT1"))
"""


def manage(env, *args, stdin=None):
    r = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300, input=stdin)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_the_index_is_rebuilt_without_positions_then_without_copies_and_back(tmp_path):
    env = {**os.environ, "STUDIO_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "studio.settings"}
    env.pop("DATABASE_URL", None)
    db = tmp_path / "studio.sqlite3"

    def table_sql():
        with sqlite3.connect(db) as c:
            return (c.execute("SELECT sql FROM sqlite_master WHERE name = 'annotate_trajectory_search'").fetchone()[0],
                    c.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0])

    manage(env, "migrate", "annotate", "0004", "--noinput")
    with sqlite3.connect(db) as c:  # (a new database: 16 KB pages, see studio.settings)
        assert c.execute("PRAGMA page_size").fetchone()[0] == 16384
    manage(env, "shell", "-v", "0", stdin=SEED)  # written with positions (detail=full)
    assert "detail" not in table_sql()[0]
    manage(env, "migrate", "--noinput")
    sql, triggers = table_sql()
    assert "detail = none" in sql and "content = ''" in sql and triggers == 1
    assert manage(env, "shell", "-v", "0", stdin=CHECK).split() == ["5", "5", "0", "4"]  # every entry kept; delete still cascades
    manage(env, "migrate", "annotate", "0016", "--noinput")  # the texts again, from the turn and step rows
    sql, triggers = table_sql()
    assert "detail = none" in sql and "content" not in sql and triggers == 1
    assert manage(env, "shell", "-v", "0", stdin=CHECK_RAW).split() == ["4", "4", "0", "3"]
    manage(env, "migrate", "annotate", "0004", "--noinput")
    sql, triggers = table_sql()
    assert "detail = full" in sql and triggers == 1
    assert manage(env, "shell", "-v", "0", stdin=CHECK_RAW).split() == ["3", "3", "0", "2"]
