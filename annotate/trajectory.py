"""The canonical trajectory: the internal annotation format (pure; no Django).

A trajectory is a system prompt, the tools the assistant may call, and an ordered list of
turns. A turn is one user message followed by the assistant's steps:

- ``think``: reasoning text (``text``)
- ``tool_call``: ``name`` + ``arguments`` (a JSON value, normally an object) + ``call_id``;
  several calls in a row before their results are parallel calls
- ``tool_result``: ``text`` (the observation) for ``call_id`` (and ``name``), ``ok`` False
  when the tool failed
- ``answer``: the assistant's final text for the turn

Every step carries error ``labels``, a ``note`` and a ``train`` flag.

>>> t = Trajectory.from_dict({"turns": [{"user": "hi", "steps": [{"kind": "answer", "text": "hello"}]}]})
>>> t.turns[0].steps[0].kind
'answer'
>>> Trajectory.from_dict(t.to_dict()) == t
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.errors import InputError

STEP_KINDS = ("think", "tool_call", "tool_result", "answer")

CASE_TYPES = (
    "tool_required",
    "no_tool",
    "clarification",
    "tool_unavailable",
    "irrelevant_tools",
    "tool_failure",
    "multi_turn",
)

CASE_TYPE_NAMES = {
    "tool_required": "Tool required",
    "no_tool": "No tool needed",
    "clarification": "Clarification needed",
    "tool_unavailable": "Tool unavailable",
    "irrelevant_tools": "Irrelevant tools only",
    "tool_failure": "Tool failure / bad result",
    "multi_turn": "Multi-turn with earlier tool results",
}


def case_type_columns(case_types) -> tuple[list[str], str]:
    """A trajectory row's case-type columns: the sorted names, and the "|a|b|" index a portable
    LIKE filter reads ("" for none; JSON containment is not available on SQLite).

    >>> case_type_columns(["multi_turn", "tool_required", "multi_turn"])
    (['multi_turn', 'tool_required'], '|multi_turn|tool_required|')
    """
    names = sorted(set(case_types))
    return names, "|" + "|".join(names) + "|" if names else ""


DEFAULT_ERROR_LABELS = (
    ("format_error", "Output is not parseable in the expected tool-call format"),
    ("hallucinated_tool", "Calls a tool that does not exist"),
    ("wrong_tool", "Calls an existing but wrong tool"),
    ("missing_required_arg", "A required argument is missing"),
    ("unexpected_arg", "An argument the schema does not define"),
    ("arg_type_error", "An argument has the wrong type"),
    ("arg_value_error", "An argument has the wrong value"),
    ("wrong_call_count", "Too many or too few calls"),
    ("unnecessary_tool_call", "Calls a tool where none was needed"),
    ("missed_tool_call", "Answers directly where a tool was needed"),
    ("missing_clarification", "Should have asked for missing information"),
    ("unnecessary_clarification", "Asked although everything needed was given"),
    ("ungrounded_answer", "The answer is not supported by the tool results"),
    ("unintended_state_change", "Changed state the user did not ask to change"),
    ("goal_partially_completed", "Only part of the user's goal was reached"),
    ("redundant_call", "Repeats a call whose result is already known"),
    ("tool_execution_error", "The environment failed, not the model"),
)

SPLITS = ("train", "eval", "test")

# Guard against absurd nesting in user data (a JSON bomb or a runaway converter).
MAX_NESTING = 64


class SchemaError(InputError):
    """A record does not have the canonical shape. ``field`` is a dotted path into it."""


@dataclass(slots=True)
class Step:
    kind: str
    text: str = ""
    name: str = ""
    arguments: Any = None
    call_id: str = ""
    ok: bool = True
    labels: list[str] = field(default_factory=list)
    note: str = ""
    train: bool = True
    # Values of the source record that have no canonical place, kept verbatim (read-only in the
    # editor, written back by the raw export): nothing an import reads is dropped.
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        # Labels are a set: kept sorted and unique so documents compare and hash the same
        # whatever order the labels were added in.
        if self.labels:
            self.labels = sorted(set(self.labels))

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind in ("think", "answer", "tool_result"):
            d["text"] = self.text
        if self.kind in ("tool_call", "tool_result"):
            d["name"] = self.name
            d["call_id"] = self.call_id
        if self.kind == "tool_call":
            d["arguments"] = self.arguments
        if self.kind == "tool_result":
            d["ok"] = self.ok
        d.update(self.annotations())
        if self.extra:
            d["extra"] = dict(self.extra)
        return d

    def annotations(self) -> dict:
        """The labels / note / train flag, only those that differ from the defaults."""
        d: dict[str, Any] = {}
        if self.labels:
            d["labels"] = list(self.labels)
        if self.note:
            d["note"] = self.note
        if not self.train:
            d["train"] = False
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "step") -> "Step":
        if not isinstance(d, dict):
            raise SchemaError("must be an object", where)
        kind = d.get("kind")
        if kind not in STEP_KINDS:
            raise SchemaError(f"kind must be one of {', '.join(STEP_KINDS)}, got {kind!r}", f"{where}.kind")
        text = d.get("text", "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise SchemaError("must be a string", f"{where}.text")
        name = d.get("name", "") or ""
        if not isinstance(name, str):
            raise SchemaError("must be a string", f"{where}.name")
        call_id = d.get("call_id", "") or ""
        if not isinstance(call_id, str):
            call_id = str(call_id)
        labels = d.get("labels", []) or []
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise SchemaError("must be a list of strings", f"{where}.labels")
        note = d.get("note", "") or ""
        if not isinstance(note, str):
            raise SchemaError("must be a string", f"{where}.note")
        arguments = d.get("arguments")
        if kind == "tool_call":
            check_nesting(arguments, f"{where}.arguments")
            if arguments is None:
                arguments = {}
        return cls(
            kind=kind,
            text=text,
            name=name,
            arguments=arguments if kind == "tool_call" else None,
            call_id=call_id,
            ok=bool(d.get("ok", True)),
            labels=list(labels),
            note=note,
            train=bool(d.get("train", True)),
            extra=extra_field(d.get("extra"), f"{where}.extra"),
        )


@dataclass(slots=True)
class Turn:
    user: str
    steps: list[Step] = field(default_factory=list)
    # The source's values for this turn (its user message) with no canonical place; see Step.extra.
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"user": self.user, "steps": [s.to_dict() for s in self.steps]}
        if self.extra:
            d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "turn") -> "Turn":
        if not isinstance(d, dict):
            raise SchemaError("must be an object", where)
        user = d.get("user", "")
        if user is None:
            user = ""
        if not isinstance(user, str):
            raise SchemaError("must be a string", f"{where}.user")
        steps = d.get("steps", [])
        if not isinstance(steps, list):
            raise SchemaError("must be a list", f"{where}.steps")
        return cls(user=user, steps=[Step.from_dict(s, f"{where}.steps[{i}]") for i, s in enumerate(steps)],
                   extra=extra_field(d.get("extra"), f"{where}.extra"))


@dataclass(slots=True)
class Meta:
    source: str = ""
    external_id: str = ""
    case_types: list[str] = field(default_factory=list)
    split: str = "train"
    tags: list[str] = field(default_factory=list)
    # Gold reference kept from the source (BFCL possible answers, tau-bench reward and actions...).
    reference: Any = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"source": self.source, "external_id": self.external_id,
                             "case_types": list(self.case_types), "split": self.split,
                             "tags": list(self.tags)}
        if self.reference is not None:
            d["reference"] = self.reference
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "meta") -> "Meta":
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise SchemaError("must be an object", where)
        # (Every imported record's meta comes here: loops rather than generators, and no field
        # path built for an absent reference, -1 us a record, measured.)
        for key in ("case_types", "tags"):
            v = d.get(key)
            if v:  # (absent, null or empty: none)
                if not isinstance(v, list):
                    raise SchemaError("must be a list of strings", f"{where}.{key}")
                for x in v:
                    if not isinstance(x, str):
                        raise SchemaError("must be a list of strings", f"{where}.{key}")
        split = d.get("split") or "train"
        if split not in SPLITS:
            raise SchemaError(f"must be one of {', '.join(SPLITS)}", f"{where}.split")
        extra = d.get("extra") or {}
        if not isinstance(extra, dict):
            raise SchemaError("must be an object", f"{where}.extra")
        if d.get("reference") is not None:
            check_nesting(d["reference"], f"{where}.reference")
        return cls(
            source=str(d.get("source") or ""),
            external_id=str(d.get("external_id") or ""),
            case_types=list(d.get("case_types") or []),
            split=split,
            tags=list(d.get("tags") or []),
            reference=d.get("reference"),
            extra=dict(extra),
        )


@dataclass(slots=True)
class Trajectory:
    system: str = ""
    tools: list[dict] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    meta: Meta = field(default_factory=Meta)

    def to_dict(self) -> dict:
        return {
            "system": self.system,
            "tools": [dict(t) for t in self.tools],
            "turns": [t.to_dict() for t in self.turns],
            "meta": self.meta.to_dict(),
        }

    def to_json(self) -> str:
        """Stable JSON (sorted keys) used for hashing and storage."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any, where: str = "") -> "Trajectory":
        if not isinstance(d, dict):
            raise SchemaError("a trajectory must be an object", where)
        p = f"{where}." if where else ""
        system = d.get("system", "") or ""
        if not isinstance(system, str):
            raise SchemaError("must be a string", f"{p}system")
        tools = d.get("tools", []) or []
        if not isinstance(tools, list):
            raise SchemaError("must be a list", f"{p}tools")
        for i, t in enumerate(tools):
            tools[i] = normalize_tool(t, f"{p}tools[{i}]")
        turns = d.get("turns", [])
        if not isinstance(turns, list):
            raise SchemaError("must be a list", f"{p}turns")
        return cls(
            system=system,
            tools=tools,
            turns=[Turn.from_dict(t, f"{p}turns[{i}]") for i, t in enumerate(turns)],
            meta=Meta.from_dict(d.get("meta"), f"{p}meta"),
        )

    # Convenience accessors -------------------------------------------------------------
    def steps(self):
        """Yield ``(turn_index, step_index, step)`` for every step."""
        for ti, turn in enumerate(self.turns):
            for si, step in enumerate(turn.steps):
                yield ti, si, step

    def tool_names(self) -> set[str]:
        return {t["name"] for t in self.tools}

    def tool_by_name(self, name: str) -> dict | None:
        for t in self.tools:
            if t["name"] == name:
                return t
        return None

    def step_count(self) -> int:
        return sum(len(t.steps) for t in self.turns)


def normalize_tool(t: Any, where: str = "tool") -> dict:
    """Accept a flat function spec or OpenAI's ``{"type": "function", "function": {...}}``.

    Returns the flat ``{"name", "description", "parameters"}`` form (extra keys kept).
    """
    if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict):
        t = t["function"]
    if not isinstance(t, dict):
        raise SchemaError("a tool must be an object", where)
    name = t.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError("a tool needs a non-empty string name", f"{where}.name")
    if len(name) > 200:  # (the project's tool catalog stores names of up to 200 characters)
        raise SchemaError(f"a tool name is at most 200 characters, this one has {len(name)}", f"{where}.name")
    params = t.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise SchemaError("must be a JSON schema object", f"{where}.parameters")
    check_nesting(params, f"{where}.parameters")
    out = dict(t)
    out["name"] = name
    out["description"] = t.get("description") or ""
    out["parameters"] = params
    return out


def extra_field(value: Any, where: str) -> dict:
    """A turn's or step's ``extra`` object (``{}`` when absent).

    >>> extra_field({"source_id": 7}, "step.extra")
    {'source_id': 7}
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SchemaError("must be an object", where)
    check_nesting(value, where)
    return dict(value)


def check_nesting(value: Any, where: str, limit: int = MAX_NESTING) -> None:
    """Raise SchemaError when ``value`` nests deeper than ``limit`` (iteratively; no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                raise SchemaError(f"nested deeper than {limit} levels", where)
            children = v.values() if isinstance(v, dict) else v
            stack.extend((c, depth + 1) for c in children)


def truncate_before(traj: Trajectory, ti: int, si: int) -> Trajectory:
    """``traj`` up to the decision at ``turns[ti].steps[si]``, without the reasoning just before it
    (the model writes its own): the prompt of that decision point, as prompt snapshots and
    evaluation items cut it.

    >>> t = Trajectory.from_dict({"turns": [{"user": "hi", "steps": [{"kind": "answer", "text": "hello"}]},
    ...     {"user": "2+2?", "steps": [{"kind": "think", "text": "add"}, {"kind": "answer", "text": "4"}]}]})
    >>> cut = truncate_before(t, 1, 1)
    >>> [len(turn.steps) for turn in cut.turns], cut.turns[1].user
    ([1, 0], '2+2?')
    """
    steps = traj.turns[ti].steps
    start = min(si, len(steps))
    while start > 0 and steps[start - 1].kind == "think":
        start -= 1
    d = traj.to_dict()
    d["turns"] = d["turns"][: ti + 1]
    d["turns"][ti]["steps"] = d["turns"][ti]["steps"][:start]
    return Trajectory.from_dict(d)
