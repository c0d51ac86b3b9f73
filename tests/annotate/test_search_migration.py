"""The search index's rebuild without positions (0005) keeps every entry, the trigger and the search."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Written at migration 0004, whose turn and step tables are older than today's import (they have no
# ``extra`` column yet): the trajectory rows and their search entries only, which is what the
# search migration rebuilds.
SEED = """
from annotate.ingest.reader import parse_file
from annotate.ingest.writer import get_or_create_project, index_search_text
from annotate.models import Trajectory
from annotate.search import search_text
p, _ = get_or_create_project("up")
rows = [b'{"turns": [{"user": "weather in Paris?", "steps": [{"kind": "tool_call", "name": "get_weather", '
        b'"arguments": {"city": "Paris"}, "call_id": "c"}, {"kind": "tool_result", "call_id": "c", "text": "18 C"}, '
        b'{"kind": "answer", "text": "HAT145 it is"}]}], "meta": {"external_id": "r%d"}}' % i for i in range(5)]
docs = [doc for _, doc in parse_file(b"\\n".join(rows), "up.jsonl").trajectories]
assert len(docs) == 5
for doc in docs:
    t = Trajectory.objects.create(project=p, external_id=doc.meta.external_id)
    index_search_text([(t.pk, search_text(doc))])
"""

CHECK = """
from annotate.models import Trajectory
qs = Trajectory.objects.filter(project__slug="up")
print(qs.search("HAT1").count(), qs.search("get_weather paris").count(), qs.search("nothing").count())
qs.filter(pk=qs.order_by("id").values_list("id", flat=True)[0]).delete()
print(qs.search("HAT1").count())
"""

# The same after migrating back to 0004: the models of later migrations (suggestions, overlap, ...) have
# no tables there, so Django's delete collector cannot run; the row goes with plain SQL (foreign keys
# off), which is what the search index's trigger is about.
CHECK_DOWN = CHECK.replace(
    'qs.filter(pk=qs.order_by("id").values_list("id", flat=True)[0]).delete()',
    "from django.db import connection\n"
    "c = connection.cursor(); c.execute('PRAGMA foreign_keys = OFF')\n"
    'c.execute("DELETE FROM annotate_trajectory WHERE id = %s", [qs.order_by("id").values_list("id", flat=True)[0]])')


def manage(env, *args, stdin=None):
    r = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300, input=stdin)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_the_index_is_rebuilt_without_positions_and_back(tmp_path):
    env = {**os.environ, "STUDIO_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "studio.settings"}
    env.pop("DATABASE_URL", None)
    db = tmp_path / "studio.sqlite3"

    def table_sql():
        with sqlite3.connect(db) as c:
            return (c.execute("SELECT sql FROM sqlite_master WHERE name = 'annotate_trajectory_search'").fetchone()[0],
                    c.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0])

    manage(env, "migrate", "annotate", "0004", "--noinput")
    manage(env, "shell", "-v", "0", stdin=SEED)  # written with positions (detail=full)
    assert "detail" not in table_sql()[0]
    manage(env, "migrate", "--noinput")
    sql, triggers = table_sql()
    assert "detail = none" in sql and triggers == 1
    assert manage(env, "shell", "-v", "0", stdin=CHECK).split() == ["5", "5", "0", "4"]  # every entry kept; delete still cascades
    manage(env, "migrate", "annotate", "0004", "--noinput")
    sql, triggers = table_sql()
    assert "detail = full" in sql and triggers == 1
    assert manage(env, "shell", "-v", "0", stdin=CHECK_DOWN).split() == ["4", "4", "0", "3"]
