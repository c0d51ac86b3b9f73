"""Fast bulk insert of canonical trajectories (imports of 100k+ trajectories).

The ORM's ``bulk_create`` builds a model instance per row and compiles SQL per batch: about 14
rows per trajectory (trajectory, turns, steps, labels, first revision) made the ORM path the
bottleneck of an import. Here rows are plain tuples written with multi-row INSERTs, their JSON
written by orjson (:func:`dumps`), and on big imports built in a second process while this one
writes (:func:`insert_trajectories`).

Columns come from the models' ``_meta`` so a field added later still gets its default; ids are
allocated up front (above the current maximum, while the import's transaction holds SQLite's
write lock), so child rows can point at their parents without reading anything back. SQLite
only (the embedded default); other databases take the ORM's ``bulk_create`` path.
"""

from __future__ import annotations

import gc
import itertools
import json
import marshal
import math
import multiprocessing
import os
import pickle
import sqlite3
import threading

import orjson
from django.db import connection, models

from annotate.findings import validate
from annotate.search import search_text
from annotate.trajectory import Trajectory as CanonicalTrajectory
from annotate.trajectory import case_type_columns


def title_of(t: CanonicalTrajectory) -> str:
    """A trajectory's list title: its first user message (or system prompt), on one line, ≤ 120 chars."""
    first = t.turns[0].user if t.turns else t.system
    first = " ".join(first.split())
    return first[:120] + ("…" if len(first) > 120 else "")


class _Table:
    """The INSERT statements for a model: the columns we set, in the order given, then the rest at their defaults.

    Rows are plain tuples in the order of ``given``; ``tail`` (the defaults of the other columns)
    is appended to each. They are written ``per_statement`` to an INSERT (one multi-row VALUES
    list): a row costs about 60 % of what it costs in a statement of its own.
    """

    def __init__(self, model: type[models.Model], given: tuple[str, ...], max_params: int = 999):
        self.model = model
        # An id we don't allocate ourselves is left to the database.
        fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.attname not in given)]
        by_attname = {f.attname: f for f in fields}
        missing = set(given) - set(by_attname)
        assert not missing, f"{model.__name__} has no columns {missing}"
        rest = [f for f in fields if f.attname not in given]
        self.given = given
        self.tail = tuple(f.get_db_prep_save(f.get_default(), connection) if f.get_default() is not None else None
                          for f in rest)
        qn = connection.ops.quote_name
        columns = [by_attname[a].column for a in given] + [f.column for f in rest]
        self.per_statement = max(1, min(100, max_params // len(columns)))
        self._head = f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(c) for c in columns)}) VALUES "
        self._values = f"({', '.join(['%s'] * len(columns))})"

    def sql_for(self, rows: int) -> str:
        return self._head + ", ".join([self._values] * rows)

    def pack(self, rows: list[tuple]) -> tuple[list[tuple], tuple, int]:
        """``rows`` as the parameters of multi-row INSERTs: full statements, then the rest (and its row count)."""
        if self.tail:
            tail = self.tail
            rows = [r + tail for r in rows]
        k = self.per_statement
        full = len(rows) - len(rows) % k
        flat = itertools.chain.from_iterable
        return [tuple(flat(rows[i:i + k])) for i in range(0, full, k)], tuple(flat(rows[full:])), len(rows) - full

    def insert(self, cursor, packed: tuple[list[tuple], tuple, int]) -> None:
        statements, rest, rest_rows = packed
        if statements:
            cursor.executemany(self.sql_for(self.per_statement), statements)
        if rest_rows:
            cursor.execute(self.sql_for(rest_rows), rest)

    def allocate(self, cursor) -> int:
        """The first free id of this table (SQLite, inside the import's write transaction).

        AUTOINCREMENT tables never reuse ids: start above both the largest id and the highest
        id ever handed out (``sqlite_sequence``), as the database itself would.
        """
        table = self.model._meta.db_table
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}")
        top = cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        seq = cursor.fetchone()
        return max(top, seq[0] if seq else 0) + 1


# orjson writes what json.dumps writes, ~10x faster; these make it refuse (TypeError) what it
# would write differently from the standard library (dataclasses, datetimes, subclasses of
# str/int/dict/list), so those take the standard encoder and fail or succeed as before.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def dumps(value) -> str:
    """JSON text of ``value``: the same JSON value as ``json.dumps(value, ensure_ascii=False)``.

    Written by orjson (compact separators; key order kept). Everything that reads these columns
    parses them (JSONField, ``json.loads``, SQLite's JSON functions), so the value matters, not
    the spacing. Where orjson would write a different value or refuses one (NaN and infinities,
    which it writes as null; integers beyond 64 bits; non-string keys; lone surrogates; types
    JSON has no word for) the standard encoder writes it, as before.
    """
    try:
        out = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False)
    if b"null" in out and _has_nonfinite(value):
        return json.dumps(value, ensure_ascii=False)
    return out.decode()


def _has_nonfinite(value) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, float) and not math.isfinite(v):
            return True
    return False


def available() -> bool:
    return connection.vendor == "sqlite"


# Imports at least this big build their rows in a second process (see insert_trajectories).
PARALLEL_MIN = 4000
BATCH = 1000


def insert_trajectories(project, trajectories: list[CanonicalTrajectory], *, author_id: int | None,
                        status: str, now, index_search=None, parallel: bool | None = None,
                        batch: int | None = None) -> list[int]:
    """Insert trajectories with turns, steps, labels and revision 1; returns their ids.

    Call inside ``transaction.atomic()``. Findings are counted here (``validate``) so the queue
    can show them without re-validating. ``index_search``, when given, is called with each
    batch's ``(trajectory id, search text)`` rows (the full-text index).

    Ids are allocated once for the whole list; rows are written ``batch`` (default ``BATCH``)
    trajectories at a time.
    With ``parallel`` (by default: at least ``PARALLEL_MIN`` trajectories, on a machine with a
    second CPU where ``fork`` is available) the rows are built (validation, JSON, search text)
    in a forked process while this one writes the previous batch: the child inherits the
    trajectories, so only the finished rows travel (``marshal``, ~7 us a trajectory to read).
    Either way the rows are the same; an error in the child is raised here, inside the caller's
    transaction, so nothing is written.
    """
    from annotate.models import Revision, Step, StepLabel, Trajectory, Turn

    n = len(trajectories)
    if not n:
        return []
    ts = connection.ops.adapt_datetimefield_value(now)
    if parallel is None:
        parallel = n >= PARALLEL_MIN and _can_fork()
    batch = batch or BATCH
    with connection.cursor() as c:
        try:
            max_params = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except AttributeError:  # (getlimit: Python 3.11+)
            max_params = connection.features.max_query_params
        tables = (
            _Table(Trajectory, ("id", "project_id", "title", "external_id", "source", "system", "tools", "status",
                                "version", "case_types", "case_types_index", "split", "tags", "reference", "extra",
                                "step_count", "finding_count", "created_at", "updated_at"), max_params),
            _Table(Turn, ("id", "trajectory_id", "index", "user"), max_params),
            _Table(Step, ("id", "trajectory_id", "turn_index", "position", "kind", "text", "name", "arguments",
                          "call_id", "ok", "note", "train"), max_params),
            _Table(StepLabel, ("step_id", "trajectory_id", "label"), max_params),
            _Table(Revision, ("trajectory_id", "version", "author_id", "created_at", "summary", "status", "document"),
                   max_params),
        )
        first = [tables[0].allocate(c), tables[1].allocate(c), tables[2].allocate(c)]
        first_traj = first[0]
        args = (project.pk, author_id, status, ts, index_search is not None)
        with (_ForkedRows if parallel else _LocalRows)(tables, trajectories, first, batch, args) as batches:
            for packed, search_rows in batches:
                for table, table_rows in zip(tables, packed):
                    table.insert(c, table_rows)
                if index_search is not None:
                    index_search(search_rows)
    return list(range(first_traj, first_traj + n))


def _packed_rows(tables, trajectories, first, args) -> tuple[list, list]:
    """One batch: each table's rows packed for its INSERTs, and the search rows."""
    rows = build_rows(trajectories, first, *args)
    return [table.pack(r) for table, r in zip(tables, rows)], rows[5]


def build_rows(trajectories: list[CanonicalTrajectory], first: list[int], project_id: int, author_id: int | None,
               status: str, ts: str, search: bool) -> tuple[list[tuple], ...]:
    """The rows of trajectories, turns, steps, labels, revisions and search text (pure).

    ``first`` holds the next trajectory, turn and step ids; it is advanced past these rows.
    """
    traj_rows, turn_rows, step_rows, label_rows, rev_rows, search_rows = [], [], [], [], [], []
    first_traj, turn_id, step_id = first
    for k, t in enumerate(trajectories):
        tid = first_traj + k
        meta = t.meta
        case_types, case_types_index = case_type_columns(meta.case_types)
        step_count = 0
        for ti, turn in enumerate(t.turns):
            turn_rows.append((turn_id, tid, ti, turn.user))
            turn_id += 1
            for si, s in enumerate(turn.steps):
                kind = s.kind
                # (ok / train as 1 / 0, which SQLite stores for a bool anyway: a bool parameter
                # costs sqlite3 an adapter lookup, ~1 us each.)
                step_rows.append((step_id, tid, ti, si, kind, s.text, s.name,
                                  dumps(s.arguments) if kind == "tool_call" else None,
                                  s.call_id, 1 if s.ok else 0, s.note, 1 if s.train else 0))
                if s.labels:
                    for label in dict.fromkeys(s.labels):
                        label_rows.append((step_id, tid, label))
                step_id += 1
            step_count += len(turn.steps)
        traj_rows.append((
            tid, project_id, title_of(t), meta.external_id[:300], meta.source[:300], t.system, dumps(t.tools),
            status, 1, dumps(case_types), case_types_index, meta.split,
            dumps(list(meta.tags)), dumps(meta.reference) if meta.reference is not None else None,
            dumps(dict(meta.extra)), step_count, len(validate(t)), ts, ts,
        ))
        rev_rows.append((tid, 1, author_id, ts, "imported", status, dumps(t.to_dict())))
        if search:
            search_rows.append((tid, search_text(t)))
    first[:] = [first_traj + len(trajectories), turn_id, step_id]
    return traj_rows, turn_rows, step_rows, label_rows, rev_rows, search_rows


class _LocalRows:
    """Each batch's rows, built here."""

    def __init__(self, tables, trajectories, first, batch, args):
        self.tables, self.trajectories, self.first, self.batch, self.args = tables, trajectories, first, batch, args

    def __enter__(self):
        ts = self.trajectories
        return (_packed_rows(self.tables, ts[i:j], self.first, self.args) for i, j in _slices(len(ts), self.batch))

    def __exit__(self, *exc):
        return False


def _slices(n: int, batch: int):
    """``(start, stop)`` of each batch; the first is an eighth of the others, so that the writer,
    which waits for it in the parallel case, starts soon."""
    start, size = 0, max(1, batch // 8)
    while start < n:
        yield start, min(n, start + size)
        start, size = start + size, batch


def _can_fork() -> bool:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return False
    # A daemonic process, such as a worker of Celery's prefork pool, may not start children; and
    # forking a process that runs other threads (a threaded web server) can leave the child stuck
    # on a lock one of them held, so those import in one process (the CLI and the bench fork).
    return (cpus > 1 and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon and threading.active_count() == 1)


class _ForkedRows:
    """Each batch's rows, built by a forked child while the caller writes the previous batch.

    The child only computes (it never touches the database connection it inherited) and leaves
    with ``os._exit`` (multiprocessing's way), so nothing of the parent's state is closed or
    flushed twice.
    """

    def __init__(self, tables, trajectories, first, batch, args):
        self.tables, self.trajectories, self.first, self.batch, self.args = tables, trajectories, first, batch, args

    def __enter__(self):
        ctx = multiprocessing.get_context("fork")
        self.recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(send, self.tables, self.trajectories, self.first, self.batch,
                                                     self.args),
                                name="import-rows", daemon=True)
        self.proc.start()
        send.close()
        return self._batches()

    def _batches(self):
        for _ in _slices(len(self.trajectories), self.batch):
            try:
                message = self.recv.recv_bytes()
            except EOFError:
                self.proc.join()
                raise RuntimeError(f"the import's row builder stopped (exit code {self.proc.exitcode})") from None
            kind, payload = message[:1], memoryview(message)[1:]
            if kind == b"m":
                yield marshal.loads(payload)
            elif kind == b"p":
                yield pickle.loads(payload)
            else:
                raise pickle.loads(payload)

    def __exit__(self, *exc):
        if exc[0] is not None and self.proc.is_alive():
            self.proc.terminate()  # (before closing its pipe: it would only fail to write)
        self.recv.close()
        self.proc.join()
        return False


def _child(send, tables, trajectories, first, batch, args) -> None:
    gc.disable()  # a short-lived copy: nothing to collect
    try:
        for i, j in _slices(len(trajectories), batch):
            rows = _packed_rows(tables, trajectories[i:j], first, args)
            try:
                message = b"m" + marshal.dumps(rows)
            except ValueError:  # a value marshal does not know (a str subclass...): pickle knows more
                message = b"p" + pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)
            send.send_bytes(message)
    except Exception as e:  # raised in the parent, as building the rows there would have
        try:
            message = b"e" + pickle.dumps(e)
        except Exception:
            message = b"e" + pickle.dumps(RuntimeError(f"{type(e).__name__}: {e}"))
        try:
            send.send_bytes(message)
        except OSError:  # the parent stopped reading: it has its own error to report
            pass
    finally:
        send.close()
