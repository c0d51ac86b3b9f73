"""Canonical trajectories as database rows: the one mapping from a document to its columns (pure; no Django).

:func:`rows_of` maps one trajectory to the values of its trajectory row (:data:`DOCUMENT_COLUMNS`,
the columns that come from the document) and appends its turn, step and label rows
(:data:`TURN_COLUMNS`, :data:`STEP_COLUMNS`, :data:`LABEL_COLUMNS`). Every writer uses it: the
SQLite writer (:mod:`annotate.ingest.sqlite`, JSON as text), the ORM writer
(:mod:`annotate.ingest.writer`, JSON as values) and saving an edited document
(:mod:`annotate.workbench.documents`).

>>> t = Trajectory.from_dict({"turns": [{"user": "Weather?", "steps": [
...     {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1",
...      "labels": ["wrong_tool"]}]}]})
>>> turns, steps, labels = [], [], []
>>> values = dict(zip(DOCUMENT_COLUMNS, rows_of(t, 7, turns, steps, labels)))
>>> values["title"], values["step_count"], steps[0][STEP_COLUMNS.index("arguments")], labels
('Weather?', 1, '{"city":"Paris"}', [(0, 7, 'wrong_tool')])
"""

from __future__ import annotations

from collections.abc import Callable

from annotate.findings import validate
from annotate.ingest.jsontext import dumps
from annotate.trajectory import Trajectory, case_type_columns

# The trajectory row's columns that come from the document, in the order rows_of gives them
# (the others, id, project, status, version and the times, are the writer's).
DOCUMENT_COLUMNS = ("title", "external_id", "source", "system", "tools", "case_types", "case_types_index", "split",
                    "tags", "reference", "extra", "step_count", "finding_count")
TURN_COLUMNS = ("trajectory_id", "index", "user", "extra")
STEP_COLUMNS = ("trajectory_id", "turn_index", "position", "kind", "text", "name", "arguments", "call_id", "ok",
                "note", "train", "extra")
# A label row names its step by the step's place among the step rows (the database numbers steps).
LABEL_COLUMNS = ("step_id", "trajectory_id", "label")

EMPTY = dumps({})  # the extra of most turns and steps
EMPTY_LIST = dumps([])  # the tags of most trajectories


def as_stored(value):
    """JSON values as they are (for the ORM's JSON fields, which encode them)."""
    return value


def title_of(t: Trajectory) -> str:
    """A trajectory's list title: its first user message (or system prompt), on one line, ≤ 120 chars."""
    first = t.turns[0].user if t.turns else t.system
    first = " ".join(first.split())
    return first[:120] + ("…" if len(first) > 120 else "")


def rows_of(t: Trajectory, tid, turn_rows: list, step_rows: list, label_rows: list,
            encode: Callable = dumps, empty=EMPTY, search: list | None = None) -> tuple:
    """Append the turn, step and label rows of ``t`` (trajectory id ``tid``) and return the values
    of its :data:`DOCUMENT_COLUMNS`.

    JSON values go through ``encode`` (default: JSON text for SQL; :func:`as_stored` for the ORM);
    an empty ``extra`` is ``empty`` (``encode({})``, made once). Booleans are 1 / 0, which SQLite
    stores for a bool anyway (a bool parameter costs sqlite3 an adapter lookup, ~1 us each) and
    the ORM's BooleanField reads as True / False.

    ``search``, when given (JSON as text only), gets the parts of the trajectory's search text
    (``"\\n".join(search)`` is :func:`annotate.search.search_text`), from the same walk over the
    steps and the same JSON text of each call's arguments.
    """
    meta = t.meta
    case_types, case_types_index = case_type_columns(meta.case_types)
    first_step = len(step_rows)
    add_step = step_rows.append
    for ti, turn in enumerate(t.turns):
        turn_rows.append((tid, ti, turn.user, encode(turn.extra) if turn.extra else empty))
        if search is not None and turn.user:
            search.append(turn.user)
        for si, s in enumerate(turn.steps):
            kind = s.kind
            if s.labels:
                for label in dict.fromkeys(s.labels):
                    label_rows.append((len(step_rows), tid, label))
            arguments = encode(s.arguments) if kind == "tool_call" else None
            add_step((tid, ti, si, kind, s.text, s.name, arguments, s.call_id, 1 if s.ok else 0, s.note,
                      1 if s.train else 0, encode(s.extra) if s.extra else empty))
            if search is not None:  # (as annotate.search.search_text writes it)
                if arguments is not None:  # (a call)
                    search.append(f"{s.name} {arguments if s.arguments not in (None, {}) else ''}".strip())
                elif s.text:
                    search.append(s.text)
                if s.note:
                    search.append(s.note)
    # (JSON text of no tags and no extra, the usual, is a constant: -0.5 us a trajectory, measured.)
    as_text = encode is dumps
    return (title_of(t), meta.external_id, meta.source, t.system, encode(t.tools), encode(case_types),
            case_types_index, meta.split, encode(list(meta.tags)) if meta.tags or not as_text else EMPTY_LIST,
            encode(meta.reference) if meta.reference is not None else None,
            encode(dict(meta.extra)) if meta.extra or not as_text else EMPTY,
            len(step_rows) - first_step, len(validate(t)))


def build_rows(trajectories: list[Trajectory], ids, project_id: int, status: str, ts: str,
               search: bool) -> tuple[list[tuple], ...]:
    """The rows of trajectories (with ``ids``), turns, steps, labels and search text, for SQL.

    A trajectory row is ``(id, project id, status, version, created, updated)`` then its
    :data:`DOCUMENT_COLUMNS` (see :data:`TRAJECTORY_COLUMNS`). No revision: an imported
    trajectory's rows are its version 1 until it changes (see
    ``annotate.workbench.documents.keep_original``).
    """
    rows = RowBuilder(project_id, status, ts, search)
    for tid, t in zip(ids, trajectories):
        rows.add(tid, t)
    return rows.rows()


class RowBuilder:
    """:func:`build_rows` a trajectory at a time: an import adds each one as soon as it is
    converted, while its objects are still in the CPU's caches."""

    __slots__ = ("head", "search", "traj_rows", "turn_rows", "step_rows", "label_rows", "search_rows")

    def __init__(self, project_id: int, status: str, ts: str, search: bool):
        self.head = (project_id, status, 1, ts, ts)
        self.search = search
        self.traj_rows: list[tuple] = []
        self.turn_rows: list[tuple] = []
        self.step_rows: list[tuple] = []
        self.label_rows: list[tuple] = []
        self.search_rows: list[tuple] = []

    def add(self, tid, t: Trajectory) -> None:
        if self.search:
            parts: list[str] = []
            self.traj_rows.append((tid, *self.head) + rows_of(t, tid, self.turn_rows, self.step_rows, self.label_rows,
                                                              search=parts))
            self.search_rows.append((tid, "\n".join(parts)))
        else:
            self.traj_rows.append((tid, *self.head) + rows_of(t, tid, self.turn_rows, self.step_rows, self.label_rows))

    def __len__(self) -> int:
        return len(self.traj_rows)

    def rows(self) -> tuple[list[tuple], ...]:
        """The trajectory, turn, step, label and search rows (see :func:`build_rows`)."""
        return self.traj_rows, self.turn_rows, self.step_rows, self.label_rows, self.search_rows


# The columns of build_rows's trajectory rows.
TRAJECTORY_COLUMNS = ("id", "project_id", "status", "version", "created_at", "updated_at") + DOCUMENT_COLUMNS
