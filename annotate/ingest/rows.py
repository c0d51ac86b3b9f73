"""Canonical trajectories as database rows (pure; no Django).

:func:`build_rows` is the one mapping of a trajectory, its turns, steps and labels to the
columns of ``annotate.models``; the writer (:mod:`annotate.ingest.sqlite`) inserts its tuples.
"""

from __future__ import annotations

from annotate.findings import validate
from annotate.ingest.jsontext import dumps
from annotate.search import search_text
from annotate.trajectory import Trajectory as CanonicalTrajectory
from annotate.trajectory import case_type_columns

EMPTY = dumps({})  # the extra of most turns and steps


def title_of(t: CanonicalTrajectory) -> str:
    """A trajectory's list title: its first user message (or system prompt), on one line, ≤ 120 chars."""
    first = t.turns[0].user if t.turns else t.system
    first = " ".join(first.split())
    return first[:120] + ("…" if len(first) > 120 else "")


def build_rows(trajectories: list[CanonicalTrajectory], ids, project_id: int, status: str, ts: str,
               search: bool) -> tuple[list[tuple], ...]:
    """The rows of trajectories (with ``ids``), turns, steps, labels and search text (pure).

    Turns and steps get their ids from the database; a label row names its step by the step's
    place among these rows: ``(step number, trajectory id, label)``. No revision: an imported
    trajectory's rows are its version 1 until it changes (see annotate.workbench.documents.keep_original).
    """
    traj_rows, turn_rows, step_rows, label_rows, search_rows = [], [], [], [], []
    for tid, t in zip(ids, trajectories):
        meta = t.meta
        case_types, case_types_index = case_type_columns(meta.case_types)
        step_count = 0
        for ti, turn in enumerate(t.turns):
            turn_rows.append((tid, ti, turn.user, dumps(turn.extra) if turn.extra else EMPTY))
            for si, s in enumerate(turn.steps):
                kind = s.kind
                if s.labels:
                    for label in dict.fromkeys(s.labels):
                        label_rows.append((len(step_rows), tid, label))
                # (ok / train as 1 / 0, which SQLite stores for a bool anyway: a bool parameter
                # costs sqlite3 an adapter lookup, ~1 us each.)
                step_rows.append((tid, ti, si, kind, s.text, s.name,
                                  dumps(s.arguments) if kind == "tool_call" else None,
                                  s.call_id, 1 if s.ok else 0, s.note, 1 if s.train else 0,
                                  dumps(s.extra) if s.extra else EMPTY))
            step_count += len(turn.steps)
        traj_rows.append((
            tid, project_id, title_of(t), meta.external_id, meta.source, t.system, dumps(t.tools),
            status, 1, dumps(case_types), case_types_index, meta.split,
            dumps(list(meta.tags)), dumps(meta.reference) if meta.reference is not None else None,
            dumps(dict(meta.extra)), step_count, len(validate(t)), ts, ts,
        ))
        if search:
            search_rows.append((tid, search_text(t)))
    return traj_rows, turn_rows, step_rows, label_rows, search_rows
