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

from django.db import connection, models

from annotate.findings import validate
from annotate.trajectory import Trajectory as CanonicalTrajectory


def title_of(t: CanonicalTrajectory) -> str:
    """A trajectory's list title: its first user message (or system prompt), on one line, ≤ 120 chars."""
    first = t.turns[0].user if t.turns else t.system
    first = " ".join(first.split())
    return first[:120] + ("…" if len(first) > 120 else "")


class _Table:
    """The INSERT statement for a model and the values of the columns we don't set."""

    def __init__(self, model: type[models.Model], given: tuple[str, ...]):
        self.model = model
        # An id we don't allocate ourselves is left to the database.
        fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.attname not in given)]
        self.given = given
        self.columns = [f.column for f in fields]
        self.order = [f.attname for f in fields]
        self.defaults = {}
        for f in fields:
            if f.attname not in given:
                default = f.get_default()
                self.defaults[f.attname] = f.get_db_prep_save(default, connection) if default is not None else None
        missing = set(given) - set(self.order)
        assert not missing, f"{model.__name__} has no columns {missing}"
        qn = connection.ops.quote_name
        self.sql = (f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(c) for c in self.columns)}) "
                    f"VALUES ({', '.join(['%s'] * len(self.columns))})")

    def row(self, values: dict) -> tuple:
        d = self.defaults
        return tuple(values[a] if a in values else d[a] for a in self.order)

    def insert(self, cursor, rows: list[tuple]) -> None:
        if rows:
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


def _j(value) -> str:
    return json.dumps(value, ensure_ascii=False)


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
    n_turns = sum(len(t.turns) for t in trajectories)
    n_steps = sum(t.step_count() for t in trajectories)
    with connection.cursor() as c:
        first_traj = traj_t.allocate(c)
        first_turn = turn_t.allocate(c)
        first_step = step_t.allocate(c)
        traj_rows, turn_rows, step_rows, label_rows, rev_rows = [], [], [], [], []
        turn_id, step_id = first_turn, first_step
        for k, t in enumerate(trajectories):
            tid = first_traj + k
            case_types = sorted(set(t.meta.case_types))
            traj_rows.append(traj_t.row({
                "id": tid, "project_id": project.pk, "title": title_of(t), "external_id": t.meta.external_id[:300],
                "source": t.meta.source[:300], "system": t.system, "tools": _j(t.tools), "status": status,
                "version": 1, "case_types": _j(case_types),
                "case_types_index": "|" + "|".join(case_types) + "|" if case_types else "",
                "split": t.meta.split, "tags": _j(list(t.meta.tags)),
                "reference": _j(t.meta.reference) if t.meta.reference is not None else None,
                "extra": _j(dict(t.meta.extra)), "step_count": t.step_count(), "finding_count": len(validate(t)),
                "created_at": ts, "updated_at": ts,
            }))
            for ti, turn in enumerate(t.turns):
                turn_rows.append(turn_t.row({"id": turn_id, "trajectory_id": tid, "index": ti, "user": turn.user}))
                turn_id += 1
                for si, s in enumerate(turn.steps):
                    step_rows.append(step_t.row({
                        "id": step_id, "trajectory_id": tid, "turn_index": ti, "position": si, "kind": s.kind,
                        "text": s.text, "name": s.name,
                        "arguments": _j(s.arguments) if s.kind == "tool_call" else None,
                        "call_id": s.call_id, "ok": s.ok, "note": s.note, "train": s.train,
                    }))
                    for label in dict.fromkeys(s.labels):
                        label_rows.append(label_t.row({"step_id": step_id, "trajectory_id": tid, "label": label}))
                    step_id += 1
            rev_rows.append(rev_t.row({"trajectory_id": tid, "version": 1, "author_id": author_id, "created_at": ts,
                                       "summary": "imported", "status": status,
                                       "document": _j(t.to_dict())}))
        traj_t.insert(c, traj_rows)
        turn_t.insert(c, turn_rows)
        step_t.insert(c, step_rows)
        label_t.insert(c, label_rows)
        rev_t.insert(c, rev_rows)
    return list(range(first_traj, first_traj + n))
