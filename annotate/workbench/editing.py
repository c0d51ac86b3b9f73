"""Edits to a canonical trajectory, as the workbench and the API make them (pure; no Django).

An ``Edit`` names one operation and where it applies; ``apply_edit`` returns a new document and
never changes its input. The same edits serve the browser (one form per step, buttons to insert,
duplicate, delete and move steps) and the API (``POST /api/trajectories/<id>/edits/``).

>>> from annotate.trajectory import Trajectory
>>> doc = Trajectory.from_dict({"turns": [{"user": "hi", "steps": [{"kind": "answer", "text": "hello"}]}]})
>>> new = apply_edit(doc, Edit("update_step", turn=0, step=0, fields={"text": "Hello!", "labels": ["format_error"]}))
>>> new.turns[0].steps[0].text, new.turns[0].steps[0].labels, doc.turns[0].steps[0].text
('Hello!', ['format_error'], 'hello')
>>> [s.kind for s in apply_edit(doc, Edit("insert_step", turn=0, step=0, fields={"kind": "think"})).turns[0].steps]
['think', 'answer']
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from core.errors import InputError
from annotate.trajectory import CASE_TYPES, SPLITS, STEP_KINDS, SchemaError, Step, Trajectory, Turn, check_nesting

# Operations that change one object's fields (three-way mergeable after a conflict) ...
FIELD_OPS = ("update_step", "update_turn", "update_meta")
# ... and operations that change the document's structure.
STRUCTURE_OPS = ("insert_step", "duplicate_step", "delete_step", "move_step", "add_parallel_call",
                 "add_turn", "delete_turn")
OPS = FIELD_OPS + STRUCTURE_OPS

# What each step kind lets an annotator change (``kind`` itself never changes: delete and insert).
STEP_FIELDS = {
    "think": ("text", "labels", "note", "train"),
    "tool_call": ("name", "arguments", "call_id", "labels", "note", "train"),
    "tool_result": ("text", "name", "call_id", "ok", "labels", "note", "train"),
    "answer": ("text", "labels", "note", "train"),
}
META_FIELDS = ("system", "case_types", "split", "tags")
MAX_TEXT = 200_000


class EditError(InputError):
    """An edit that cannot apply; ``field`` names the offending input (as in ``SchemaError``)."""


@dataclass
class Edit:
    """One change. ``turn``/``step`` address the target; ``fields`` carry new values.

    - ``update_step``: ``fields`` ⊆ the kind's STEP_FIELDS
    - ``insert_step``: a new step of ``fields["kind"]`` at position ``step`` (``None``: at the end)
    - ``duplicate_step`` / ``delete_step``: the step at ``turn``/``step``
    - ``move_step``: by ``fields["by"]`` (-1 up, +1 down), within its turn
    - ``add_parallel_call``: another call next to the call at ``turn``/``step``, with its result
    - ``update_turn``: ``fields["user"]``;  ``add_turn``: ``fields["user"]`` at the end;  ``delete_turn``
    - ``update_meta``: ``fields`` ⊆ META_FIELDS
    """

    op: str
    turn: int | None = None
    step: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"op": self.op, "turn": self.turn, "step": self.step, "fields": dict(self.fields)}

    @classmethod
    def from_dict(cls, d: Any) -> "Edit":
        if not isinstance(d, dict):
            raise EditError("an edit must be an object")
        op = d.get("op")
        if op not in OPS:
            raise EditError(f"must be one of {', '.join(OPS)}", "op")
        fields = d.get("fields") or {}
        if not isinstance(fields, dict):
            raise EditError("must be an object", "fields")
        return cls(op=op, turn=_index_or_none(d.get("turn"), "turn"), step=_index_or_none(d.get("step"), "step"),
                   fields=dict(fields))

    def describe(self) -> str:
        """A short summary for the revision history ("edited turn 1, step 2")."""
        where = ""
        if self.turn is not None:
            where = f" turn {self.turn + 1}" + (f", step {self.step + 1}" if self.step is not None else "")
        verbs = {"update_step": "edited", "insert_step": f"inserted a {self.fields.get('kind', 'step')} at",
                 "duplicate_step": "duplicated", "delete_step": "deleted", "move_step": "moved",
                 "add_parallel_call": "added a parallel call after", "update_turn": "edited the user message of",
                 "add_turn": "added", "delete_turn": "deleted", "update_meta": "edited the trajectory's metadata"}
        text = verbs[self.op]
        if self.op == "add_turn":
            return "added a turn"
        return text + where if where else text


def _index_or_none(v: Any, name: str) -> int | None:
    if v is None or v == "":
        return None
    try:
        i = int(v)
    except (TypeError, ValueError):
        raise EditError("must be a whole number", name) from None
    if i < 0:
        raise EditError("must not be negative", name)
    return i


def copy_document(doc: Trajectory) -> Trajectory:
    return copy.deepcopy(doc)


def apply_edit(doc: Trajectory, edit: Edit) -> Trajectory:
    """A new document with ``edit`` applied. Raises EditError (bad address or value)."""
    new = copy_document(doc)
    _APPLY[edit.op](new, edit)
    return new


# --- addressing --------------------------------------------------------------------------------

def _turn(doc: Trajectory, edit: Edit) -> Turn:
    if edit.turn is None or edit.turn >= len(doc.turns):
        raise EditError(f"there is no turn {_human(edit.turn)}", "turn")
    return doc.turns[edit.turn]


def _step_index(doc: Trajectory, edit: Edit) -> tuple[Turn, int]:
    turn = _turn(doc, edit)
    if edit.step is None or edit.step >= len(turn.steps):
        raise EditError(f"turn {edit.turn + 1} has no step {_human(edit.step)}", "step")
    return turn, edit.step


def _human(i: int | None) -> str:
    return "?" if i is None else str(i + 1)


# --- field values ------------------------------------------------------------------------------

def clean_step_fields(kind: str, fields: dict[str, Any], allowed_labels: list[str] | None = None) -> dict[str, Any]:
    """Check and normalise the fields an update may set on a step of ``kind``."""
    allowed = STEP_FIELDS[kind]
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in allowed:
            raise EditError(f"a {kind} step has no field {key!r}", key)
        if key in ("text", "note", "name", "call_id"):
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise EditError("must be a string", key)
            if len(value) > MAX_TEXT:
                raise EditError(f"is longer than {MAX_TEXT:,} characters", key)
            out[key] = value.strip() if key in ("name", "call_id") else value
        elif key in ("ok", "train"):
            if not isinstance(value, bool):
                raise EditError("must be true or false", key)
            out[key] = value
        elif key == "labels":
            if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
                raise EditError("must be a list of label names", key)
            if allowed_labels is not None:
                unknown = [x for x in value if x not in allowed_labels]
                if unknown:
                    raise EditError(f"not in the project's taxonomy: {', '.join(unknown)}", key)
            out[key] = list(dict.fromkeys(value))
        elif key == "arguments":
            try:
                check_nesting(value, key)
            except SchemaError as e:
                raise EditError(e.message, key) from None
            out[key] = value
    return out


def clean_meta_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in META_FIELDS:
            raise EditError(f"a trajectory has no editable field {key!r}", key)
        if key == "system":
            if not isinstance(value, str):
                raise EditError("must be a string", key)
            out[key] = value
        elif key == "split":
            if value not in SPLITS:
                raise EditError(f"must be one of {', '.join(SPLITS)}", key)
            out[key] = value
        else:
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise EditError("must be a list of strings", key)
            cleaned = [x.strip() for x in value if x.strip()]
            if key == "case_types":
                unknown = [x for x in cleaned if x not in CASE_TYPES]
                if unknown:
                    raise EditError(f"unknown case type: {', '.join(unknown)}", key)
            out[key] = list(dict.fromkeys(cleaned))
    return out


def step_values(step: Step) -> dict[str, Any]:
    """The editable fields of ``step`` as a dict (the shape ``update_step`` takes)."""
    return {k: copy.deepcopy(getattr(step, k)) for k in STEP_FIELDS[step.kind]}


def meta_values(doc: Trajectory) -> dict[str, Any]:
    return {"system": doc.system, "case_types": list(doc.meta.case_types), "split": doc.meta.split,
            "tags": list(doc.meta.tags)}


# --- operations ----------------------------------------------------------------------------------

def _update_step(doc: Trajectory, edit: Edit) -> None:
    turn, i = _step_index(doc, edit)
    step = turn.steps[i]
    for key, value in clean_step_fields(step.kind, edit.fields).items():
        setattr(step, key, value)


def new_step(kind: str, doc: Trajectory) -> Step:
    if kind not in STEP_KINDS:
        raise EditError(f"must be one of {', '.join(STEP_KINDS)}", "kind")
    if kind == "tool_call":
        name = doc.tools[0]["name"] if doc.tools else ""
        return Step(kind=kind, name=name, arguments={}, call_id=new_call_id(doc))
    return Step(kind=kind)


def new_call_id(doc: Trajectory, taken: set[str] | None = None) -> str:
    """A call id no step of ``doc`` uses yet: ``call_1``, ``call_2``, …"""
    used = {s.call_id for _, _, s in doc.steps()} | (taken or set())
    n = 1
    while f"call_{n}" in used:
        n += 1
    return f"call_{n}"


def _insert_step(doc: Trajectory, edit: Edit) -> None:
    turn = _turn(doc, edit)
    at = len(turn.steps) if edit.step is None else edit.step
    if at > len(turn.steps):
        raise EditError(f"turn {edit.turn + 1} has only {len(turn.steps)} steps", "step")
    step = new_step(edit.fields.get("kind", ""), doc)
    rest = {k: v for k, v in edit.fields.items() if k != "kind"}
    for key, value in clean_step_fields(step.kind, rest).items():
        setattr(step, key, value)
    turn.steps.insert(at, step)


def _duplicate_step(doc: Trajectory, edit: Edit) -> None:
    turn, i = _step_index(doc, edit)
    dup = copy.deepcopy(turn.steps[i])
    if dup.kind == "tool_call":
        # A duplicated call is a new call: it gets its own id so its result can name it.
        dup.call_id = new_call_id(doc)
    turn.steps.insert(i + 1, dup)


def _delete_step(doc: Trajectory, edit: Edit) -> None:
    turn, i = _step_index(doc, edit)
    del turn.steps[i]


def _move_step(doc: Trajectory, edit: Edit) -> None:
    turn, i = _step_index(doc, edit)
    by = edit.fields.get("by")
    if by not in (-1, 1):
        raise EditError("must be -1 (up) or 1 (down)", "by")
    j = i + by
    if not 0 <= j < len(turn.steps):
        raise EditError("the step is already at the " + ("top" if by < 0 else "bottom") + " of its turn", "by")
    turn.steps[i], turn.steps[j] = turn.steps[j], turn.steps[i]


def _add_parallel_call(doc: Trajectory, edit: Edit) -> None:
    """Another call in the run of calls holding ``step``, and its result after the run of results."""
    turn, i = _step_index(doc, edit)
    if turn.steps[i].kind != "tool_call":
        raise EditError("parallel calls go next to a tool call", "step")
    end = i
    while end + 1 < len(turn.steps) and turn.steps[end + 1].kind == "tool_call":
        end += 1
    source = turn.steps[i]
    call = Step(kind="tool_call", name=source.name, arguments={}, call_id=new_call_id(doc))
    turn.steps.insert(end + 1, call)
    results_end = end + 2  # the first step after the new call
    while results_end < len(turn.steps) and turn.steps[results_end].kind == "tool_result":
        results_end += 1
    if results_end > end + 2:
        turn.steps.insert(results_end, Step(kind="tool_result", name=call.name, call_id=call.call_id))


def _update_turn(doc: Trajectory, edit: Edit) -> None:
    turn = _turn(doc, edit)
    user = edit.fields.get("user")
    if not isinstance(user, str):
        raise EditError("must be a string", "user")
    turn.user = user


def _add_turn(doc: Trajectory, edit: Edit) -> None:
    user = edit.fields.get("user", "")
    if not isinstance(user, str):
        raise EditError("must be a string", "user")
    doc.turns.append(Turn(user=user, steps=[Step(kind="answer")]))


def _delete_turn(doc: Trajectory, edit: Edit) -> None:
    _turn(doc, edit)
    if len(doc.turns) == 1:
        raise EditError("a trajectory keeps at least one turn", "turn")
    del doc.turns[edit.turn]


def _update_meta(doc: Trajectory, edit: Edit) -> None:
    fields = clean_meta_fields(edit.fields)
    if "system" in fields:
        doc.system = fields["system"]
    for key in ("case_types", "split", "tags"):
        if key in fields:
            setattr(doc.meta, key, fields[key])


_APPLY = {
    "update_step": _update_step, "insert_step": _insert_step, "duplicate_step": _duplicate_step,
    "delete_step": _delete_step, "move_step": _move_step, "add_parallel_call": _add_parallel_call,
    "update_turn": _update_turn, "add_turn": _add_turn, "delete_turn": _delete_turn, "update_meta": _update_meta,
}
