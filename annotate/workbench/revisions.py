"""What changed between two versions of a trajectory, and re-applying an edit on top of someone
else's (pure; no Django).

``diff_documents(old, new)`` lists per-step changes (added / removed / changed, with the fields
that changed and a word-level diff of texts) for the history page and the conflict view.
``rebase_edit(edit, base, current)`` carries an edit made on ``base`` over to ``current``: it
finds the same step again (steps may have moved) and merges field by field, so a change the
other person made to a field this edit did not touch survives.

>>> from annotate.trajectory import Trajectory
>>> old = Trajectory.from_dict({"turns": [{"user": "q", "steps": [{"kind": "answer", "text": "It is sunny."}]}]})
>>> new = Trajectory.from_dict({"turns": [{"user": "q", "steps": [{"kind": "think", "text": "check"},
...                                                             {"kind": "answer", "text": "It is rainy."}]}]})
>>> [(c.kind, c.where) for c in diff_documents(old, new)]
[('added', 'turn 1 · step 1 · think'), ('changed', 'turn 1 · step 2 · answer')]
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from annotate.workbench.editing import FIELD_OPS, Edit, meta_values, step_values
from annotate.trajectory import Step, Trajectory

MAX_DIFF_WORDS = 4000


@dataclass
class FieldChange:
    field: str
    old: str
    new: str
    # Word-level diff of old → new: ("equal" | "delete" | "insert", text) runs, for texts.
    segments: list[tuple[str, str]] = field(default_factory=list)


    @property
    def before(self) -> list[tuple[bool, str]]:
        """The old value alone, as ``(changed, text)`` runs: readable on its own, removed words marked."""
        return [(op == "delete", text) for op, text in self.segments if op != "insert"]

    @property
    def after(self) -> list[tuple[bool, str]]:
        """The new value alone, as ``(changed, text)`` runs, added words marked.

        >>> f = FieldChange("text", "it is sunny", "it is rainy", word_diff("it is sunny", "it is rainy"))
        >>> f.before, f.after
        ([(False, 'it is '), (True, 'sunny')], [(False, 'it is '), (True, 'rainy')])
        """
        return [(op == "insert", text) for op, text in self.segments if op != "delete"]


@dataclass
class Change:
    kind: str  # "added" | "removed" | "changed"
    where: str
    turn: int | None = None  # in the new document (the old one for "removed")
    step: int | None = None
    fields: list[FieldChange] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "where": self.where, "turn": self.turn, "step": self.step,
                "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in self.fields]}


def _as_doc(d: Trajectory | dict) -> Trajectory:
    return d if isinstance(d, Trajectory) else Trajectory.from_dict(d)


def show(value: Any) -> str:
    """A field value as the history page shows it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """Word-level diff runs of ``old`` → ``new``.

    >>> word_diff("it is sunny", "it is rainy")
    [('equal', 'it is '), ('delete', 'sunny'), ('insert', 'rainy')]
    """
    a, b = _words(old), _words(new)
    if len(a) + len(b) > MAX_DIFF_WORDS:
        return [("delete", old), ("insert", new)]
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("equal", "".join(a[i1:i2])))
        else:
            if i2 > i1:
                out.append(("delete", "".join(a[i1:i2])))
            if j2 > j1:
                out.append(("insert", "".join(b[j1:j2])))
    return out


def _words(s: str) -> list[str]:
    # Words with their trailing whitespace, so joining the runs gives the text back.
    return re.findall(r"\S+\s*|\s+", s)


def _field_changes(old: dict, new: dict) -> list[FieldChange]:
    out = []
    for key in list(dict.fromkeys([*old, *new])):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            # Arguments: one line per argument that changed ("arguments.city"), not one JSON blob.
            out.extend(FieldChange(f"{key}.{c.field}", c.old, c.new, c.segments) for c in _field_changes(a, b))
            continue
        sa, sb = show(a if a is not None else ""), show(b if b is not None else "")
        out.append(FieldChange(key, sa, sb, word_diff(sa, sb)))
    return out


def _signature(step: Step) -> str:
    return json.dumps(step.to_dict(), sort_keys=True, ensure_ascii=False)


def _where(ti: int, si: int, step: Step) -> str:
    name = f" {step.name}" if step.kind in ("tool_call", "tool_result") and step.name else ""
    return f"turn {ti + 1} · step {si + 1} · {step.kind}{name}"


def align_turns(old: Trajectory, new: Trajectory) -> dict[int, int]:
    """Old turn index → new turn index for turns present in both (by user message, then position)."""
    mapping: dict[int, int] = {}
    a = [t.user for t in old.turns]
    b = [t.user for t in new.turns]
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):
            for k in range(i2 - i1):
                mapping[i1 + k] = j1 + k
    return mapping


def align_steps(old: list[Step], new: list[Step]) -> dict[int, int]:
    """Old step index → new step index: unchanged steps, and changed steps of the same kind
    standing where the old one stood."""
    mapping: dict[int, int] = {}
    a = [_signature(s) for s in old]
    b = [_signature(s) for s in new]
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                mapping[i1 + k] = j1 + k
        elif op == "replace":
            # Pair same-kind steps in order: an edited step is "the same step, changed".
            j = j1
            for i in range(i1, i2):
                while j < j2 and new[j].kind != old[i].kind:
                    j += 1
                if j < j2:
                    mapping[i] = j
                    j += 1
    return mapping


def diff_documents(old: Trajectory | dict, new: Trajectory | dict) -> list[Change]:
    """The changes from ``old`` to ``new``: metadata first, then turn by turn, step by step."""
    old, new = _as_doc(old), _as_doc(new)
    changes: list[Change] = []
    meta = _field_changes(meta_values(old), meta_values(new))
    old_tools = [t["name"] for t in old.tools]
    new_tools = [t["name"] for t in new.tools]
    if old.tools != new.tools:
        meta.append(FieldChange("tools", ", ".join(old_tools), ", ".join(new_tools),
                                word_diff(", ".join(old_tools), ", ".join(new_tools))))
    if meta:
        changes.append(Change("changed", "trajectory", fields=meta))
    turn_map = align_turns(old, new)
    mapped_new = set(turn_map.values())
    for ti, turn in enumerate(old.turns):
        if ti not in turn_map:
            changes.append(Change("removed", f"turn {ti + 1}", turn=ti,
                                  fields=[FieldChange("user", turn.user, "", [("delete", turn.user)])]))
    for nj, turn in enumerate(new.turns):
        if nj not in mapped_new:
            changes.append(Change("added", f"turn {nj + 1}", turn=nj,
                                  fields=[FieldChange("user", "", turn.user, [("insert", turn.user)])]))
            for si, s in enumerate(turn.steps):
                changes.append(Change("added", _where(nj, si, s), nj, si, _field_changes({}, step_values(s))))
    for ti, nj in sorted(turn_map.items()):
        a, b = old.turns[ti], new.turns[nj]
        if a.user != b.user:
            changes.append(Change("changed", f"turn {nj + 1} · user message", nj, None,
                                  [FieldChange("user", a.user, b.user, word_diff(a.user, b.user))]))
        step_map = align_steps(a.steps, b.steps)
        paired = set(step_map.values())
        events: list[tuple[int, int, Change]] = []
        for si, s in enumerate(a.steps):
            if si not in step_map:
                # Sort removed steps where they stood, relative to the new document's steps.
                before = [step_map[k] for k in range(si) if k in step_map]
                pos = (max(before) if before else -1)
                events.append((pos, 1, Change("removed", _where(ti, si, s), ti, si,
                                              _field_changes(step_values(s), {}))))
            else:
                t = b.steps[step_map[si]]
                fields = _field_changes(step_values(s), step_values(t))
                if fields:
                    events.append((step_map[si], 0, Change("changed", _where(nj, step_map[si], t), nj,
                                                           step_map[si], fields)))
        for sj, t in enumerate(b.steps):
            if sj not in paired:
                events.append((sj, 0, Change("added", _where(nj, sj, t), nj, sj, _field_changes({}, step_values(t)))))
        changes.extend(c for _, _, c in sorted(events, key=lambda e: (e[0], e[1])))
    return changes


# --- carrying an edit over to a newer version --------------------------------------------------------

def merge_fields(base: dict, mine: dict, theirs: dict) -> tuple[dict, list[str]]:
    """Three-way merge of the fields in ``mine``: a field I left as it was in ``base`` takes
    ``theirs``; a field I changed keeps mine. Returns the merged fields and the fields we both
    changed differently (mine wins there; the conflict view names them).

    >>> merge_fields({"text": "a", "note": ""}, {"text": "b", "note": ""}, {"text": "a", "note": "theirs"})
    ({'text': 'b', 'note': 'theirs'}, [])
    >>> merge_fields({"text": "a"}, {"text": "b"}, {"text": "c"})
    ({'text': 'b'}, ['text'])
    """
    merged: dict = {}
    both: list[str] = []
    for key, value in mine.items():
        b, t = base.get(key), theirs.get(key, base.get(key))
        if value == b:
            merged[key] = t
        else:
            merged[key] = value
            if t != b and t != value:
                both.append(key)
    return merged, both


@dataclass
class Rebased:
    edit: Edit | None  # None: the target is gone (they deleted it)
    both_changed: list[str] = field(default_factory=list)


def locate_step(base: Trajectory, current: Trajectory, turn: int, step: int) -> tuple[int, int] | None:
    """Where the step at ``turn``/``step`` of ``base`` stands in ``current`` (None if it is gone)."""
    tmap = align_turns(base, current)
    if turn not in tmap or turn >= len(base.turns):
        return None
    nt = tmap[turn]
    smap = align_steps(base.turns[turn].steps, current.turns[nt].steps)
    if step not in smap:
        return None
    return nt, smap[step]


def rebase_edit(edit: Edit, base: Trajectory, current: Trajectory) -> Rebased:
    """``edit`` (made on ``base``) re-addressed and merged onto ``current``."""
    if edit.op == "update_meta":
        merged, both = merge_fields(meta_values(base), edit.fields, meta_values(current))
        return Rebased(Edit("update_meta", fields=merged), both)
    if edit.op == "add_turn":
        return Rebased(Edit("add_turn", fields=dict(edit.fields)))
    if edit.op in ("update_turn", "delete_turn"):
        tmap = align_turns(base, current)
        if edit.turn not in tmap:
            return Rebased(None)
        nt = tmap[edit.turn]
        if edit.op == "delete_turn":
            return Rebased(Edit("delete_turn", turn=nt))
        merged, both = merge_fields({"user": base.turns[edit.turn].user}, edit.fields,
                                    {"user": current.turns[nt].user})
        return Rebased(Edit("update_turn", turn=nt, fields=merged), both)
    if edit.op == "insert_step":
        return _rebase_insert(edit, base, current)
    if edit.turn is None or edit.step is None:
        return Rebased(None)
    where = locate_step(base, current, edit.turn, edit.step)
    if where is None:
        return Rebased(None)
    nt, ns = where
    if edit.op == "update_step":
        mine = edit.fields
        base_values = step_values(base.turns[edit.turn].steps[edit.step])
        their_values = step_values(current.turns[nt].steps[ns])
        merged, both = merge_fields(base_values, mine, their_values)
        return Rebased(Edit("update_step", nt, ns, merged), both)
    return Rebased(Edit(edit.op, nt, ns, dict(edit.fields)))


def _rebase_insert(edit: Edit, base: Trajectory, current: Trajectory) -> Rebased:
    tmap = align_turns(base, current)
    if edit.turn not in tmap:
        return Rebased(None)
    nt = tmap[edit.turn]
    steps = base.turns[edit.turn].steps
    at = len(steps) if edit.step is None else edit.step
    if at == 0:
        return Rebased(Edit("insert_step", nt, 0, dict(edit.fields)))
    # Insert right after the step it followed in the base version.
    where = locate_step(base, current, edit.turn, at - 1)
    if where is None:
        return Rebased(None)
    return Rebased(Edit("insert_step", nt, where[1] + 1, dict(edit.fields)))


def is_field_edit(edit: Edit) -> bool:
    return edit.op in FIELD_OPS


def conflicting_values(edit: Edit, base: Trajectory, current: Trajectory) -> list[FieldChange]:
    """The fields both people changed, each as theirs (``old``) and mine (``new``): what the
    conflict view quotes, and only that (a note conflict shows the notes, not the message text).

    >>> base = Trajectory.from_dict({"turns": [{"user": "q", "steps": [{"kind": "answer", "text": "Hi.", "note": ""}]}]})
    >>> theirs = Trajectory.from_dict({"turns": [{"user": "q", "steps": [
    ...     {"kind": "answer", "text": "Hello.", "note": "too short"}]}]})
    >>> [(f.field, f.old, f.new) for f in conflicting_values(Edit("update_step", 0, 0, {"text": "Hi.", "note": "fine"}),
    ...                                                      base, theirs)]
    [('note', 'too short', 'fine')]
    """
    rebased = rebase_edit(edit, base, current)
    if rebased.edit is None or not rebased.both_changed:
        return []
    if edit.op == "update_meta":
        theirs = meta_values(current)
    elif edit.op == "update_turn":
        theirs = {"user": current.turns[rebased.edit.turn].user}
    elif edit.op == "update_step":
        theirs = step_values(current.turns[rebased.edit.turn].steps[rebased.edit.step])
    else:
        return []
    out = []
    for key in rebased.both_changed:
        a, b = show(theirs.get(key, "")), show(edit.fields.get(key, ""))
        out.append(FieldChange(key, a, b, word_diff(a, b)))
    return out
