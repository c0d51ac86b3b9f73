"""Eight writers make the first edits of freshly imported trajectories at once, through the API.

Run as a script against the database that ``DATABASE_URL`` names (migrated): each writer thread
holds its own connection, waits at a barrier, then sends its edit with ``base_version=1``; on a
409 it resends with the version the conflict names, until accepted. Prints one JSON line: the
status codes seen and, per trajectory, the notes of its final document and its revision count.
Used by tests/annotate/test_concurrent_edits_postgres.py.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from annotate.ingest.writer import get_or_create_project, import_file  # noqa: E402
from annotate.models import Membership, Trajectory  # noqa: E402

WRITERS = 8
TRAJECTORIES = 8


def main() -> None:
    project, _ = get_or_create_project("race")
    user = get_user_model().objects.create_user("racer", password="pw-for-tests-1")
    Membership.objects.create(user=user, project=project, role="lead")
    records = [{"turns": [{"user": f"question {t}.{w}", "assistant_answer": f"answer {t}.{w}"}
                          for w in range(WRITERS)]} for t in range(TRAJECTORIES)]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    outcome = import_file(project, data, "race.jsonl")
    assert outcome.imported == TRAJECTORIES, outcome.errors
    ids = list(Trajectory.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    codes: Counter = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    barriers = {pk: threading.Barrier(WRITERS) for pk in ids}

    def writer(w: int) -> None:
        client = APIClient(HTTP_HOST="localhost")
        client.force_authenticate(user)
        client.raise_request_exception = False  # a 500 is counted, as a user would see it
        try:
            for pk in ids:
                base = 1
                barriers[pk].wait(timeout=60)
                for _ in range(50):
                    r = client.post(f"/api/trajectories/{pk}/edits/", {
                        "base_version": base, "op": "update_step", "turn": w, "step": 0,
                        "fields": {"note": f"writer {w}"}}, format="json")
                    with lock:
                        codes[r.status_code] += 1
                    if r.status_code != 409:
                        if r.status_code != 200:
                            with lock:
                                errors.append(f"{r.status_code}: {r.content[:300]!r}")
                        break
                    base = r.json()["current_version"]
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = {}
    for pk in ids:
        row = Trajectory.objects.get(pk=pk)
        doc = row.to_canonical()
        final[pk] = {"version": row.version, "revisions": row.revisions.count(),
                     "versions": sorted(row.revisions.values_list("version", flat=True)),
                     "notes": [turn.steps[0].note for turn in doc.turns]}
    print(json.dumps({"codes": {str(k): v for k, v in codes.items()}, "errors": errors[:5], "final": final}))


if __name__ == "__main__":
    main()
