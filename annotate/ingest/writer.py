"""The writer: canonical trajectories into the database, in bulk, all-or-nothing.

The import is one pipeline, whatever the file's size: the format modules
(:mod:`annotate.formats`) read records, :mod:`annotate.ingest.reader` turns a file into batches of
canonical trajectories, and :func:`import_file` here writes each batch as it comes, in one
transaction, then records the ImportBatch. The upload page, the API and ``manage.py
import_trajectories`` all call :func:`import_file` (or :func:`import_upload`).

On the embedded SQLite the rows are written by :mod:`annotate.ingest.sqlite` (plain multi-row
INSERTs, ~10x the ORM's speed; a big file is read by forked processes while this one writes);
other databases take the ORM's ``bulk_create``. The rows are the same either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from annotate.ingest import sqlite
from annotate.ingest.reader import MAX_LISTED, Reading, gc_paused, read_file, unlisted_note
from annotate.ingest.rows import DOCUMENT_COLUMNS, STEP_COLUMNS, TURN_COLUMNS, as_stored, rows_of
from annotate.models import (SEARCH_DOCUMENTS, SEARCH_TABLE, SQLITE_SEARCH_TABLE_SQL, ImportBatch, Project, Step,
                             StepLabel, Tool, Trajectory, Turn, documents_of, search_index_enabled)
from annotate.permissions import author_of
from annotate.search import search_text
from annotate.trajectory import Trajectory as CanonicalTrajectory

BATCH = 2000


@dataclass
class ImportOutcome:
    batch: ImportBatch | None
    imported: int = 0
    skipped: int = 0  # the problems found (one per record left out), listed in ``errors`` or not
    errors: list[dict] = field(default_factory=list)
    notes: int = 0  # the first entries of ``errors`` that are notes on the list, not problems

    def more_than(self, shown: int) -> int:
        """How many problems are not among the first ``shown`` entries of ``errors``."""
        return self.skipped - max(0, min(shown, len(self.errors)) - self.notes)

    @property
    def ok(self) -> bool:
        return not self.errors or self.imported > 0


def get_or_create_project(slug: str, name: str | None = None) -> tuple[Project, bool]:
    """A project by slug, created with the default taxonomy when missing."""
    return Project.objects.get_or_create(slug=slug, defaults={"name": name or slug.replace("-", " ").title()})


def import_file(project: Project, data: bytes, filename: str, *, fmt: str = "auto", skip_invalid: bool = False,
                answers: bytes | None = None, answers_filename: str = "", tools: bytes | None = None,
                tools_filename: str = "", user=None) -> ImportOutcome:
    """Import the bytes of a file (the upload page, the API and ``manage.py import_trajectories``).

    All-or-nothing unless ``skip_invalid``; files over ``settings.IMPORT_MAX_BYTES`` are refused.
    The file is written while it is read, a batch at a time. Only the number of processes that
    read depends on its size: from ``sqlite.STREAM_MIN_BYTES`` on (on the embedded SQLite, where a
    process can be forked) other processes read while this one writes; a smaller file is read
    here, between the writes (forking would cost more than it saves).
    """
    reading = read_file(data, filename, fmt, settings.IMPORT_MAX_BYTES, skip_invalid, answers,
                        answers_filename=answers_filename, tools=tools, tools_filename=tools_filename)
    big = len(data) >= sqlite.STREAM_MIN_BYTES
    # The readers start now; a big write's WAL checkpoint runs in the background, after the
    # commit, and the next big import's readers read while it waits for it (see checkpoint_later).
    with _stream(project, reading, readers=None if big else 0) as stream, \
            sqlite.checkpoint_later(meanwhile=stream.read_while) if big else contextlib.nullcontext(), \
            transaction.atomic():
        try:
            with transaction.atomic(), gc_paused():
                written = stream.write()
                if written.result.errors and not skip_invalid:
                    raise _Abort
                _merge_tools(project, written.tools.values())
                imported = len(written.ids)
        except _Abort:  # (rolls back the rows written before the first problem)
            imported = 0
        return _record_import(project, filename, fmt, author_of(user), imported, written.result.errors,
                              written.result.problem_count, written.result.errors.unlisted,
                              bool(written.result.stopped_after))


def import_upload(project: Project, upload, *, fmt: str, skip_invalid: bool, answers=None, tools=None,
                  user=None) -> ImportOutcome:
    """:func:`import_file` for uploaded files (the upload page and the API): the trajectories file,
    and optionally a BFCL answers file and a tools file."""
    return import_file(project, upload.read(), upload.name, fmt=fmt, skip_invalid=skip_invalid,
                       answers=answers.read() if answers else None, answers_filename=answers.name if answers else "",
                       tools=tools.read() if tools else None, tools_filename=tools.name if tools else "", user=user)


class _Abort(Exception):
    pass


def _stream(project: Project, reading: Reading, *, readers: int | None):
    """The reading's trajectories, to write as its batches come (``readers``: see ``sqlite.Stream``)."""
    if sqlite.available():
        return sqlite.Stream(project, reading, status=Trajectory.DRAFT, now=timezone.now(),
                             index_search=index_search_text if search_index_enabled() else None, readers=readers)
    return _OrmStream(project, reading)


class _OrmStream(contextlib.AbstractContextManager):
    """:class:`sqlite.Stream`'s counterpart on other databases: the ORM's ``bulk_create``, batch by batch."""

    def __init__(self, project: Project, reading: Reading):
        self.project, self.reading = project, reading

    def __exit__(self, *exc) -> None:
        return None

    def read_while(self, busy) -> None:
        return None

    def write(self) -> sqlite.Streamed:
        ids: list[int] = []
        tools: dict[str, dict] = {}
        now = timezone.now()
        for batch in self.reading.batches():
            trajectories = [t for _, _, t in batch]
            for t in trajectories:
                for spec in t.tools:
                    tools.setdefault(spec["name"], spec)
            ids.extend(row.pk for row in _insert_with_orm(self.project, trajectories, Trajectory.DRAFT, now))
        return sqlite.Streamed(ids, tools, self.reading.finish())


def _record_import(project: Project, filename: str, fmt: str, author, imported: int, issues,
                   count: int | None = None, unlisted: int = 0, stopped: bool = False) -> ImportOutcome:
    """The ImportBatch of an import (what came in, what was skipped and why) and its outcome.

    ``count``: how many problems there were, of which ``unlisted`` are not in ``issues``
    (:class:`annotate.ingest.reader.Problems`): an entry first says so (after the note that
    reading stopped, when it did: ``stopped``), where every page of problems shows it.
    """
    errors = [e.to_dict() if hasattr(e, "to_dict") else dict(e) for e in issues]
    count = len(errors) if count is None else count
    notes = int(stopped) + bool(unlisted)
    if unlisted:
        listed = count - unlisted
        errors.insert(1 if stopped else 0, {"file": filename, "line": None, "field": "",
                                            "message": unlisted_note(unlisted, listed)})
    batch = ImportBatch.objects.create(project=project, filename=filename[:500], fmt=fmt, created_by=author,
                                       imported=imported, skipped=count, errors=errors[:MAX_LISTED + 1])
    return ImportOutcome(batch=batch, imported=imported, skipped=count, errors=errors, notes=notes)


def merge_tool_catalog(project: Project, trajectories: list[CanonicalTrajectory]) -> int:
    """Add tools the trajectories use that the project's catalog does not have yet."""
    return _merge_tools(project, (spec for t in trajectories for spec in t.tools))


def _merge_tools(project: Project, specs: Iterable[dict]) -> int:
    """Add the tools of ``specs`` (the first spec of each name) that the catalog does not have yet."""
    known = set(project.tools.values_list("name", flat=True))
    new: dict[str, dict] = {}
    for spec in specs:
        if spec["name"] not in known and spec["name"] not in new:
            new[spec["name"]] = spec
    Tool.objects.bulk_create([
        Tool(project=project, name=n[:200], description=s.get("description", ""), parameters=s.get("parameters", {}))
        for n, s in new.items()
    ])
    return len(new)


def write_trajectories(project: Project, trajectories: list[CanonicalTrajectory], user=None,
                       status: str = Trajectory.DRAFT, *, ids_only: bool = False) -> list:
    """Bulk-insert trajectories with their turns, steps and labels, at version 1.

    No Revision is written: the rows are version 1 until the trajectory first changes, when
    ``annotate.workbench.documents.keep_original`` writes it (and ``history_of`` shows it
    meanwhile). Returns the new rows, or only their ids with ``ids_only`` (large imports).
    """
    now = timezone.now()
    if sqlite.available():  # the embedded SQLite default: plain executemany, ~10x the ORM's speed
        with transaction.atomic(), gc_paused():
            ids = sqlite.insert_trajectories(project, trajectories, status=status, now=now,
                                             index_search=index_search_text if search_index_enabled() else None)
        return ids if ids_only else list(Trajectory.objects.filter(pk__in=ids).order_by("id"))
    created = _insert_with_orm(project, trajectories, status, now)
    return [r.pk for r in created] if ids_only else created


def _insert_with_orm(project: Project, trajectories: list[CanonicalTrajectory], status: str, now) -> list[Trajectory]:
    """The ORM's ``bulk_create`` of the trajectories' rows (databases other than SQLite)."""
    created: list[Trajectory] = []
    for start in range(0, len(trajectories), BATCH):
        chunk = trajectories[start:start + BATCH]
        turn_rows, step_rows, label_rows = [], [], []  # (naming their trajectory by its place in chunk)
        rows = [Trajectory(project=project, status=status, created_at=now, updated_at=now,
                           **dict(zip(DOCUMENT_COLUMNS, rows_of(t, i, turn_rows, step_rows, label_rows, as_stored, {}))))
                for i, t in enumerate(chunk)]
        Trajectory.objects.bulk_create(rows)
        insert_rows_with_orm([row.pk for row in rows], turn_rows, step_rows, label_rows)
        index_search_text([(row.pk, search_text(t)) for row, t in zip(rows, chunk)])
        created.extend(rows)
    return created


def insert_rows_with_orm(pks: list[int], turn_rows: list[tuple], step_rows: list[tuple],
                         label_rows: list[tuple]) -> None:
    """Insert the turn, step and label rows of :func:`annotate.ingest.rows.rows_of` (with
    :func:`~annotate.ingest.rows.as_stored` values) through the ORM; each row's trajectory id is a
    place in ``pks``."""
    Turn.objects.bulk_create([Turn(**dict(zip(TURN_COLUMNS, (pks[r[0]], *r[1:])))) for r in turn_rows],
                             batch_size=5000)
    steps = [Step(**dict(zip(STEP_COLUMNS, (pks[r[0]], *r[1:])))) for r in step_rows]
    Step.objects.bulk_create(steps, batch_size=5000)
    if label_rows:
        StepLabel.objects.bulk_create([StepLabel(step_id=steps[k].pk, trajectory_id=pks[place], label=label)
                                       for k, place, label in label_rows], batch_size=5000)


def index_search_text(rows: list[tuple[int, str]], *, replace: bool = False) -> None:
    """Write ``(trajectory id, text)`` into the full-text index (a no-op where there is none)."""
    if not rows or not search_index_enabled():
        return
    conn = connections["default"]
    if conn.vendor == "postgresql":
        with conn.cursor() as c:
            c.executemany(f"INSERT INTO {SEARCH_TABLE} (trajectory_id, document) VALUES (%s, to_tsvector('simple', %s)) "
                          "ON CONFLICT (trajectory_id) DO UPDATE SET document = EXCLUDED.document", rows)
        return
    with conn.cursor() as c:
        if not replace:  # (new trajectories: their entries' rowids are their ids)
            c.executemany(f"INSERT INTO {SEARCH_TABLE}(rowid, text) VALUES (%s, %s)", rows)
            return
        # The index keeps no texts, so an entry cannot be deleted: a new entry is written under a
        # new document number, which becomes the trajectory's current one (see models.SEARCH_TABLE).
        for pk, text in rows:
            c.execute(f"DELETE FROM {SEARCH_DOCUMENTS} WHERE trajectory_id = %s", [pk])
            c.execute(f"INSERT INTO {SEARCH_DOCUMENTS} (trajectory_id) VALUES (%s)", [pk])
            c.execute(f"INSERT INTO {SEARCH_TABLE}(rowid, text) VALUES (%s, %s)", [-c.lastrowid, text])


def rebuild_search_index(chunk: int = 2000, progress=None) -> int:
    """Write the full-text index anew from every trajectory's current document; returns how many.

    On SQLite the index keeps no texts, so a save leaves its trajectory's previous entry behind and
    a deleted trajectory its entries (each is never matched again: see ``models.SEARCH_TABLE``; about
    50 bytes each). After many saves or a big delete this drops them. One transaction: a search
    meanwhile sees the old index. ``progress(done, total)`` is called after each ``chunk``.
    """
    if not search_index_enabled():
        return 0
    conn = connections["default"]
    with transaction.atomic(), conn.cursor() as c:
        if conn.vendor == "sqlite":
            c.execute(f"DROP TABLE {SEARCH_TABLE}")
            c.execute(SQLITE_SEARCH_TABLE_SQL)
            c.execute(f"DELETE FROM {SEARCH_DOCUMENTS}")
        else:
            c.execute(f"DELETE FROM {SEARCH_TABLE}")
        ids = list(Trajectory.objects.order_by("id").values_list("id", flat=True))
        for start in range(0, len(ids), chunk):
            docs = documents_of(ids[start:start + chunk])
            index_search_text([(pk, search_text(doc)) for pk, doc in docs.items()])
            if progress is not None:
                progress(min(len(ids), start + chunk), len(ids))
    return len(ids)
