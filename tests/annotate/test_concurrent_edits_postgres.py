"""Concurrent first edits of imported trajectories on PostgreSQL: conflicts or successes, never a 500.

An import writes no revision; the first change of a trajectory writes its version 1 (keep_original).
Eight writers doing that at once used to collide on the (trajectory, version) unique constraint
(IntegrityError, a 500) on PostgreSQL, where SQLite's whole-database write lock serialised them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_scaled_out import manage, postgres_url  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("servers")]


def test_eight_writers_on_first_edits_get_conflicts_not_500s_and_lose_nothing(postgres_url, tmp_path):  # noqa: F811
    server = postgres_url.rsplit("/", 1)[0]
    env = {**os.environ, "DATABASE_URL": server + "/postgres", "STUDIO_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "studio.settings", "PYTHONPATH": str(ROOT)}
    manage(env, "shell", "--no-imports", "-c",
           "from django.db import connection; connection.cursor().execute('CREATE DATABASE race')")
    env["DATABASE_URL"] = server + "/race"
    manage(env, "migrate", "--noinput")
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "annotate" / "concurrent_first_edits.py")], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    codes = out["codes"]
    assert set(codes) <= {"200", "409"}, (codes, out["errors"])
    assert codes.get("200") == 8 * 8  # every writer's edit was accepted in the end, after its conflicts
    assert codes.get("409", 0) > 0  # the writers did collide
    for pk, t in out["final"].items():
        # Nothing lost: each writer's note is in the final document, and every accepted save
        # is a version of its own after the imported original.
        assert t["notes"] == [f"writer {w}" for w in range(8)], pk
        assert t["version"] == 9 and t["versions"] == list(range(1, 10)), pk
