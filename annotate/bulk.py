"""Fast bulk insert of canonical trajectories (imports of 100k+ trajectories).

The ORM's ``bulk_create`` builds a model instance per row and compiles SQL per batch: about 14
rows per trajectory (trajectory, turns, steps, labels, first revision) made the ORM path the
bottleneck of an import. Here rows are plain tuples written with ``executemany``.

Columns come from the models' ``_meta`` so a field added later still gets its default; ids are
allocated up front (above the current maximum, while the import's transaction holds SQLite's
write lock), so child rows can point at their parents without reading anything back. SQLite
only (the embedded default); other databases take the ORM's ``bulk_create`` path.
"""

from __future__ import annotations

import json
import math

import orjson
from django.db import connection, models

from annotate.findings import validate
from annotate.trajectory import Trajectory as CanonicalTrajectory


def title_of(t: CanonicalTrajectory) -> str:
    """A trajectory's list title: its first user message (or system prompt), on one line, ≤ 120 chars."""
    first = t.turns[0].user if t.turns else t.system
    first = " ".join(first.split())
    return first[:120] + ("…" if len(first) > 120 else "")


class _Table:
    """The INSERT statement for a model: the columns we set, in the order given, then the rest at their defaults.

    Rows are plain tuples in the order of ``given``; ``tail`` (the defaults of the other columns)
    is appended to each.
    """

    def __init__(self, model: type[models.Model], given: tuple[str, ...]):
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
        self.sql = (f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(c) for c in columns)}) "
                    f"VALUES ({', '.join(['%s'] * len(columns))})")

    def insert(self, cursor, rows: list[tuple]) -> None:
        if rows:
            if self.tail:
                tail = self.tail
                rows = [r + tail for r in rows]
            cursor.executemany(self.sql, rows)

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


_j = dumps


def available() -> bool:
    return connection.vendor == "sqlite"


def insert_trajectories(project, trajectories: list[CanonicalTrajectory], *, author_id: int | None,
                        status: str, now) -> list[int]:
    """Insert trajectories with turns, steps, labels and revision 1; returns their ids.

    Call inside ``transaction.atomic()``. Findings are counted here (``validate``) so the queue
    can show them without re-validating.
    """
    from annotate.models import Revision, Step, StepLabel, Trajectory, Turn

    n = len(trajectories)
    if not n:
        return []
    ts = connection.ops.adapt_datetimefield_value(now)
    traj_t = _Table(Trajectory, ("id", "project_id", "title", "external_id", "source", "system", "tools", "status",
                                 "version", "case_types", "case_types_index", "split", "tags", "reference", "extra",
                                 "step_count", "finding_count", "created_at", "updated_at"))
    turn_t = _Table(Turn, ("id", "trajectory_id", "index", "user"))
    step_t = _Table(Step, ("id", "trajectory_id", "turn_index", "position", "kind", "text", "name", "arguments",
                           "call_id", "ok", "note", "train"))
    label_t = _Table(StepLabel, ("step_id", "trajectory_id", "label"))
    rev_t = _Table(Revision, ("trajectory_id", "version", "author_id", "created_at", "summary", "status", "document"))
    with connection.cursor() as c:
        first_traj = traj_t.allocate(c)
        first_turn = turn_t.allocate(c)
        first_step = step_t.allocate(c)
        traj_rows, turn_rows, step_rows, label_rows, rev_rows = [], [], [], [], []
        turn_id, step_id = first_turn, first_step
        project_id = project.pk
        for k, t in enumerate(trajectories):
            tid = first_traj + k
            meta = t.meta
            case_types = sorted(set(meta.case_types))
            step_count = 0
            for ti, turn in enumerate(t.turns):
                turn_rows.append((turn_id, tid, ti, turn.user))
                turn_id += 1
                for si, s in enumerate(turn.steps):
                    kind = s.kind
                    # (ok / train as 1 / 0, which SQLite stores for a bool anyway: a bool parameter
                    # costs sqlite3 an adapter lookup, ~1 us each.)
                    step_rows.append((step_id, tid, ti, si, kind, s.text, s.name,
                                      _j(s.arguments) if kind == "tool_call" else None,
                                      s.call_id, 1 if s.ok else 0, s.note, 1 if s.train else 0))
                    if s.labels:
                        for label in dict.fromkeys(s.labels):
                            label_rows.append((step_id, tid, label))
                    step_id += 1
                step_count += len(turn.steps)
            traj_rows.append((
                tid, project_id, title_of(t), meta.external_id[:300], meta.source[:300], t.system, _j(t.tools),
                status, 1, _j(case_types), "|" + "|".join(case_types) + "|" if case_types else "", meta.split,
                _j(list(meta.tags)), _j(meta.reference) if meta.reference is not None else None,
                _j(dict(meta.extra)), step_count, len(validate(t)), ts, ts,
            ))
            rev_rows.append((tid, 1, author_id, ts, "imported", status, _j(t.to_dict())))
        traj_t.insert(c, traj_rows)
        turn_t.insert(c, turn_rows)
        step_t.insert(c, step_rows)
        label_t.insert(c, label_rows)
        rev_t.insert(c, rev_rows)
    return list(range(first_traj, first_traj + n))
