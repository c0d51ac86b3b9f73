"""Preference pairs: a shared context, a chosen and a rejected continuation (pure; no Django).

A pair forks a canonical trajectory at a cut point ``(turn, step)``: the **context** is every
earlier turn plus the cut turn's user message and its steps before ``step``; the **chosen** and
**rejected** continuations are what the assistant does next in that turn (think, tool calls, tool
results, answer). Later turns are not part of a pair: they depended on the original continuation.

>>> from annotate.trajectory import Trajectory
>>> t = Trajectory.from_dict({"tools": [{"name": "get_weather", "parameters": {"type": "object",
...     "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
...     "turns": [{"user": "Weather in Paris?", "steps": [
...         {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1"},
...         {"kind": "tool_result", "name": "get_weather", "text": "18C", "call_id": "c1"},
...         {"kind": "answer", "text": "18 degrees."}]}]})
>>> pair = fork(t, 0, 0, category="tool_needed")
>>> pair.rejected = starter_steps("tool_needed", pair.chosen, pair.context)
>>> [s.kind for s in pair.chosen], [s.kind for s in pair.rejected]
(['tool_call', 'tool_result', 'answer'], ['answer'])
>>> pair_errors(pair)
[]

Imported preference data (``pairs_from_candidates``) is one JSON object per question:

.. code-block:: json

    {"id": "flight-17",                       // optional, kept as the pairs' external id
     "system": "You are a travel assistant.", // optional
     "tools": [{"name": "search_flights", "parameters": {...}}],  // optional function specs
     "history": [{"user": "...", "steps": [...]}],                // optional earlier turns
     "question": "Find me a flight to Seattle.",                  // the user message answered
     "candidates": [
        {"id": "direct",  "type": "direct",    "answer": "Flight AS12 leaves at 9:00."},
        {"id": "call",    "type": "tool_call", "tool_calls": [{"name": "search_flights",
                                                "arguments": {"origin": "JFK", "destination": "SEA",
                                                              "date": "2024-05-20"}}]},
        {"id": "clarify", "type": "clarify",   "answer": "Where from, and on which date?"},
        {"id": "refuse",  "type": "refusal",   "answer": "I can't search flights."}],
     "correct": "clarify",                    // a candidate id, or its 0-based index
     "category": "missing_argument"}          // optional: else inferred per wrong candidate

A candidate is either ``{"steps": [canonical steps]}`` or the shorthand ``think`` / ``tool_calls``
(each ``{"name", "arguments"}``) / ``answer``, in that order. ``type`` (``direct``, ``tool_call``,
``clarify``, ``refusal``) lets the category be inferred: a correct call against any answer is
``tool_needed``; a correct direct answer against a call ``tool_not_needed``; a correct clarifying
question against a call ``missing_argument``; a correct refusal against a call ``irrelevant_tools``.
Each wrong candidate becomes one pair: the correct one chosen, the wrong one rejected.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from core.errors import InputError
from annotate.findings import validate
from annotate.trajectory import SchemaError, Step, Trajectory, Turn

# Categories ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    key: str
    name: str
    chosen: str
    rejected: str

    @property
    def description(self) -> str:
        if not self.chosen:
            return "Any other preference."
        return f"Chosen: {self.chosen}. Rejected: {self.rejected}."


CATEGORIES: dict[str, Category] = {c.key: c for c in [
    Category("tool_needed", "Tool needed", "the correct call with an answer grounded in its result",
             "a made-up direct answer"),
    Category("tool_not_needed", "Tool not needed", "a direct answer", "an unnecessary tool call"),
    Category("missing_argument", "Missing required argument", "a clarifying question",
             "a call with a guessed argument"),
    Category("irrelevant_tools", "Irrelevant tools only", "saying the tools can't do it",
             "a forced call of an unrelated tool"),
    Category("tool_result", "Tool result given", "an answer grounded in the tool result",
             "an answer that ignores it"),
    Category("cost", "Cost", "the minimal calls", "redundant, repeated calls"),
    Category("format", "Format", "a parseable, schema-valid call", "a malformed call"),
    Category("other", "Other", "", ""),
]}

SOURCES = ("manual", "correction", "imported", "evaluation")
STATUSES = ("draft", "approved", "rejected")

# The category of a pair whose rejected side is malformed or fails the schema (any rejected side may;
# here it is the point of the pair).
FORMAT = "format"


class PairError(InputError):
    """A pair (or a request to build one) is not acceptable. ``field`` is a dotted path into it."""


# The pair --------------------------------------------------------------------------------------


@dataclass
class Pair:
    """A shared context and two continuations of its last turn.

    ``context``'s last turn is the one being continued: its user message and the steps before
    the cut. ``cut`` is therefore derived, never stored apart from the context.
    """

    context: Trajectory
    chosen: list[Step] = field(default_factory=list)
    rejected: list[Step] = field(default_factory=list)
    category: str = "other"
    source: str = "manual"
    status: str = "draft"
    note: str = ""
    external_id: str = ""
    # Why a lead keeps a chosen side that fails validation (empty: the chosen side must validate).
    override: str = ""

    @property
    def cut(self) -> tuple[int, int]:
        """``(turn, step)``: where the continuations start."""
        if not self.context.turns:
            return (0, 0)
        return (len(self.context.turns) - 1, len(self.context.turns[-1].steps))

    def side(self, name: str) -> list[Step]:
        if name not in ("chosen", "rejected"):
            raise ValueError(f"no side {name!r}")
        return self.chosen if name == "chosen" else self.rejected

    def completed(self, side: str) -> Trajectory:
        """The context with one side appended to its last turn: what validation and rendering see."""
        return with_continuation(self.context, self.side(side))

    def to_document(self) -> dict:
        """The JSON document a snapshot pins: ``{"context", "chosen", "rejected", "meta"}``."""
        return {
            "context": self.context.to_dict(),
            "chosen": [s.to_dict() for s in self.chosen],
            "rejected": [s.to_dict() for s in self.rejected],
            "meta": {"category": self.category, "source": self.source, "status": self.status,
                     "note": self.note, "external_id": self.external_id,
                     "cut": {"turn": self.cut[0], "step": self.cut[1]},
                     **({"override": self.override} if self.override else {})},
        }

    @classmethod
    def from_document(cls, d: Any) -> "Pair":
        if not isinstance(d, dict):
            raise PairError("a pair must be an object")
        try:
            context = Trajectory.from_dict(d.get("context"), "context")
            chosen = steps_from_dicts(d.get("chosen"), "chosen")
            rejected = steps_from_dicts(d.get("rejected"), "rejected")
        except SchemaError as e:
            raise PairError(e.message, e.field) from None
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise PairError("must be an object", "meta")
        return cls(context=context, chosen=chosen, rejected=rejected,
                   category=str(meta.get("category") or "other"), source=str(meta.get("source") or "manual"),
                   status=str(meta.get("status") or "draft"), note=str(meta.get("note") or ""),
                   external_id=str(meta.get("external_id") or ""), override=str(meta.get("override") or ""))

    def content_key(self) -> str:
        """sha256 of what the pair trains on (context and both sides), for de-duplication."""
        body = {"context": self.context.to_dict(), "chosen": [step_signature(s) for s in self.chosen],
                "rejected": [step_signature(s) for s in self.rejected]}
        body["context"].pop("meta", None)
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def steps_from_dicts(items: Any, where: str) -> list[Step]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise SchemaError("must be a list of steps", where)
    return [Step.from_dict(s, f"{where}[{i}]") for i, s in enumerate(items)]


def with_continuation(context: Trajectory, steps: list[Step]) -> Trajectory:
    """``context`` whose last turn continues with ``steps``: a new trajectory that shares the step
    objects (read it, validate it, render it; copy before changing it)."""
    turns = list(context.turns) or [Turn(user="")]
    last = turns[-1]
    turns[-1] = Turn(user=last.user, steps=list(last.steps) + list(steps))
    return Trajectory(system=context.system, tools=context.tools, turns=turns, meta=context.meta)


def fork(traj: Trajectory, turn: int, step: int, *, category: str = "other", source: str = "manual",
         note: str = "") -> Pair:
    """Cut ``traj`` before ``turns[turn].steps[step]``: both sides start as the trajectory's own continuation.

    ``step`` may equal the number of steps in the turn (an empty continuation to write by hand).
    Raises ``PairError`` for a cut point past the end.
    """
    check_cut(traj, turn, step)
    context = Trajectory(system=traj.system, tools=copy.deepcopy(traj.tools),
                         turns=copy.deepcopy(traj.turns[:turn]) + [
                             Turn(user=traj.turns[turn].user, steps=copy.deepcopy(traj.turns[turn].steps[:step]))],
                         meta=copy.deepcopy(traj.meta))
    rest = traj.turns[turn].steps[step:]
    return Pair(context=context, chosen=copy.deepcopy(rest), rejected=copy.deepcopy(rest),
                category=category, source=source, note=note, external_id=traj.meta.external_id)


def check_cut(traj: Trajectory, turn: int, step: int) -> None:
    n_turns = len(traj.turns)
    if not isinstance(turn, int) or not 0 <= turn < n_turns:
        raise PairError(f"turn {turn} is past the end: the trajectory has {n_turns} turn"
                        f"{'' if n_turns == 1 else 's'} (0 to {n_turns - 1})", "cut.turn")
    n_steps = len(traj.turns[turn].steps)
    if not isinstance(step, int) or not 0 <= step <= n_steps:
        raise PairError(f"step {step} is past the end of turn {turn}, which has {n_steps} step"
                        f"{'' if n_steps == 1 else 's'} (cut at 0 to {n_steps})", "cut.step")


# Comparing steps -------------------------------------------------------------------------------

# What a step contributes to the rendered text. Call ids, labels, notes and train flags do not
# make two continuations different in what the model would be trained to prefer.
CONTENT_FIELDS = ("kind", "text", "name", "arguments", "ok")


def step_signature(s: Step) -> dict:
    d = {"kind": s.kind}
    if s.kind in ("think", "answer", "tool_result"):
        d["text"] = s.text
    if s.kind in ("tool_call", "tool_result"):
        d["name"] = s.name
    if s.kind == "tool_call":
        d["arguments"] = s.arguments
    if s.kind == "tool_result":
        d["ok"] = s.ok
    return d


def _sig_key(s: Step) -> str:
    return json.dumps(step_signature(s), sort_keys=True, ensure_ascii=False)


def same_content(a: list[Step], b: list[Step]) -> bool:
    return [_sig_key(s) for s in a] == [_sig_key(s) for s in b]


@dataclass(frozen=True)
class DiffRow:
    """One row of the side-by-side view: ``op`` is same / changed / chosen_only / rejected_only."""

    op: str
    chosen: int | None
    rejected: int | None
    fields: tuple[str, ...] = ()


def diff_sides(chosen: list[Step], rejected: list[Step]) -> list[DiffRow]:
    """Align the two sides step by step and say where they differ.

    >>> a = [Step("think", "t"), Step("answer", "yes")]
    >>> b = [Step("think", "t"), Step("answer", "no")]
    >>> [(r.op, r.fields) for r in diff_sides(a, b)]
    [('same', ()), ('changed', ('text',))]
    """
    ka, kb = [_sig_key(s) for s in chosen], [_sig_key(s) for s in rejected]
    rows: list[DiffRow] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ka, b=kb, autojunk=False).get_opcodes():
        if tag == "equal":
            rows.extend(DiffRow("same", i1 + k, j1 + k) for k in range(i2 - i1))
            continue
        # Pair up replaced steps in order; the surplus on either side stands alone.
        n = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(n):
            a, b = chosen[i1 + k], rejected[j1 + k]
            changed = tuple(f for f in CONTENT_FIELDS if getattr(a, f) != getattr(b, f))
            rows.append(DiffRow("changed", i1 + k, j1 + k, changed))
        rows.extend(DiffRow("chosen_only", i, None) for i in range(i1 + n, i2))
        rows.extend(DiffRow("rejected_only", None, j) for j in range(j1 + n, j2))
    return rows


# Validation ------------------------------------------------------------------------------------


def side_findings(pair: Pair, side: str):
    """The canonical validation findings on one side's steps, re-indexed from 0 within the side.

    Calls that end a side are left waiting for their results on purpose (the model's output stops
    at its call), so "call without a result" is not reported for them.
    """
    turn, start = pair.cut
    steps = pair.side(side)
    trailing = len(steps)
    while trailing > 0 and steps[trailing - 1].kind == "tool_call":
        trailing -= 1
    out = []
    for f in validate(pair.completed(side)):
        if f.turn == turn and f.step is not None and f.step >= start:
            i = f.step - start
            if f.code == "call_without_result" and i >= trailing:
                continue
            out.append((i, f))
    return out


def pair_errors(pair: Pair, categories: dict | None = None) -> list[PairError]:
    """Every reason the pair cannot be saved, each naming the field it concerns (empty: fine).

    - the category must be known (built-in or the project's own);
    - the context must have a user turn to continue, and both sides at least one step;
    - a side must start with something the assistant does (not a tool result);
    - the two sides must differ in content;
    - the chosen side must pass schema validation, unless a lead recorded why it is kept anyway
      (``override``). The rejected side may be wrong in any way (a tool that does not exist,
      arguments that break the schema or do not parse): that is what it teaches; its problems
      become labels on its steps (:func:`label_rejected`), not errors.
    """
    categories = CATEGORIES if categories is None else categories
    errors: list[PairError] = []
    if pair.category not in categories:
        errors.append(PairError(f"unknown category {pair.category!r}; use one of {', '.join(categories)}",
                                "category"))
    if pair.source not in SOURCES:
        errors.append(PairError(f"unknown source {pair.source!r}; use one of {', '.join(SOURCES)}", "source"))
    if pair.status not in STATUSES:
        errors.append(PairError(f"unknown status {pair.status!r}; use one of {', '.join(STATUSES)}", "status"))
    if not pair.context.turns:
        errors.append(PairError("the context has no user turn to continue", "context"))
        return errors
    for side in ("chosen", "rejected"):
        steps = pair.side(side)
        if not steps:
            errors.append(PairError(f"the {side} side is empty: add at least one step", side))
        elif steps[0].kind == "tool_result":
            errors.append(PairError(f"the {side} side starts with a tool result; a continuation starts with "
                                    "what the assistant does (think, call or answer): cut after the result",
                                    f"{side}[0].kind"))
    if pair.chosen and pair.rejected and same_content(pair.chosen, pair.rejected):
        errors.append(PairError("chosen and rejected are identical: edit the rejected side so the pair "
                                "teaches a preference", "rejected"))
    if not pair.override.strip():
        for i, f in side_findings(pair, "chosen"):
            if f.severity != "error":
                continue
            where = f"chosen[{i}]" + (f".{f.field}" if f.field else "")
            errors.append(PairError(f"{f.message} (the chosen side must be valid; a lead may keep it with a "
                                    "recorded reason)", where))
    return errors


# What each validation finding on a rejected side is, as a step-error label of the default taxonomy.
FINDING_LABELS = {"unknown_tool": "hallucinated_tool", "arguments_not_object": "format_error",
                  "result_without_call": "format_error"}


def finding_label(f) -> str | None:
    """The error label for a validation finding (``annotate.findings``), or None for a warning.

    >>> from annotate.findings import Finding
    >>> finding_label(Finding("schema_violation", "'city' is a required property"))
    'missing_required_arg'
    """
    if f.severity != "error":
        return None
    if f.code == "schema_violation":
        m = f.message
        if "is a required property" in m:
            return "missing_required_arg"
        if "Additional properties" in m:
            return "unexpected_arg"
        if "is not of type" in m:
            return "arg_type_error"
        return "arg_value_error"
    return FINDING_LABELS.get(f.code, "format_error")


def label_rejected(pair: Pair) -> Pair:
    """Put the rejected side's validation problems on its steps as error labels (in place).

    >>> from annotate.trajectory import Trajectory
    >>> p = Pair(Trajectory(turns=[Turn("Book it.")]), [Step("answer", "Which date?")],
    ...          [Step("tool_call", name="book_hotel", arguments={}, call_id="c1")])
    >>> label_rejected(p).rejected[0].labels
    ['hallucinated_tool']
    """
    for i, f in side_findings(pair, "rejected"):
        label = finding_label(f)
        if label is not None and 0 <= i < len(pair.rejected) and label not in pair.rejected[i].labels:
            pair.rejected[i].labels = sorted({*pair.rejected[i].labels, label})
    return pair


def check_pair(pair: Pair, categories: dict | None = None) -> Pair:
    """Raise the first of ``pair_errors`` (all of them in its message), else return the pair."""
    errors = pair_errors(pair, categories)
    if errors:
        first = errors[0]
        more = "; ".join(str(e) for e in errors[1:])
        raise PairError(first.message + (f" (and: {more})" if more else ""), first.field)
    return pair


# Starters: a typical bad variant of the chosen side ---------------------------------------------


class StarterError(PairError):
    """A starter does not apply to this chosen side (e.g. "break the JSON" with no call)."""


@dataclass(frozen=True)
class Starter:
    label: str
    build: Callable[[list[Step], Trajectory], list[Step]]


def _new_call_id(existing: set[str], base: str = "call") -> str:
    i = 1
    while f"{base}_{i}" in existing:
        i += 1
    return f"{base}_{i}"


def _call_ids(context: Trajectory, steps: list[Step]) -> set[str]:
    ids = {s.call_id for _, _, s in context.steps() if s.call_id}
    return ids | {s.call_id for s in steps if s.call_id}


def blank_value(schema: Any) -> Any:
    """The emptiest value that still has the schema's type (an enum's first value)."""
    if not isinstance(schema, dict):
        return ""
    if schema.get("enum"):
        return schema["enum"][0]
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    return {"string": "", "number": 0, "integer": 0, "float": 0, "int": 0, "boolean": False, "bool": False,
            "array": [], "list": [], "tuple": [], "object": placeholder_arguments(schema),
            "dict": placeholder_arguments(schema)}.get(t, "")


def placeholder_arguments(parameters: Any) -> dict:
    """Arguments with every required property blank: schema-valid for plain types, to edit by hand."""
    if not isinstance(parameters, dict):
        return {}
    props = parameters.get("properties") or {}
    return {name: blank_value(props.get(name)) for name in parameters.get("required") or []}


def _leading_thinks(steps: list[Step]) -> list[Step]:
    out = []
    for s in steps:
        if s.kind != "think":
            break
        out.append(copy.deepcopy(s))
    return out


def _pick_tool(context: Trajectory, avoid: set[str]) -> dict:
    if not context.tools:
        raise StarterError("the trajectory offers no tools, so there is no call to insert", "rejected")
    return next((t for t in context.tools if t["name"] not in avoid), context.tools[0])


def _extra_call(chosen: list[Step], context: Trajectory, *, prefer_unused: bool) -> list[Step]:
    used = {s.name for s in chosen if s.kind == "tool_call"}
    tool = _pick_tool(context, used if prefer_unused else set())
    # Reuse arguments an earlier call of the same tool had: a realistic repeated call.
    earlier = [s for _, _, s in context.steps() if s.kind == "tool_call" and s.name == tool["name"]]
    args = copy.deepcopy(earlier[-1].arguments) if earlier else placeholder_arguments(tool.get("parameters"))
    call = Step(kind="tool_call", name=tool["name"], arguments=args,
                call_id=_new_call_id(_call_ids(context, chosen)))
    return _leading_thinks(chosen) + [call]


def _drop_calls(chosen: list[Step], context: Trajectory) -> list[Step]:
    if not any(s.kind == "tool_call" for s in chosen):
        raise StarterError("this starter drops the tool call, but the chosen side has none", "chosen")
    answers = [s for s in chosen if s.kind == "answer"]
    return [Step(kind="answer", text=answers[-1].text if answers else "")]


def _insert_call(chosen: list[Step], context: Trajectory) -> list[Step]:
    return _extra_call(chosen, context, prefer_unused=True)


def _forced_call(chosen: list[Step], context: Trajectory) -> list[Step]:
    return _extra_call(chosen, context, prefer_unused=False)


def _blank_argument(chosen: list[Step], context: Trajectory) -> list[Step]:
    calls = [i for i, s in enumerate(chosen) if s.kind == "tool_call"]
    if not calls:
        # A clarifying question on the chosen side: the bad variant guesses instead of asking.
        return _forced_call(chosen, context)
    i = calls[0]
    out = copy.deepcopy(chosen[: i + 1])
    call = out[i]
    tool = context.tool_by_name(call.name) or {}
    params = tool.get("parameters") or {}
    required = list(params.get("required") or [])
    if not required or not isinstance(call.arguments, dict):
        raise StarterError(f"tool {call.name!r} has no required argument to blank", "chosen")
    call.arguments[required[0]] = blank_value((params.get("properties") or {}).get(required[0]))
    return out


def _ignore_result(chosen: list[Step], context: Trajectory) -> list[Step]:
    results = [i for i, s in enumerate(chosen) if s.kind == "tool_result"]
    if not results:
        raise StarterError("this starter needs a tool result on the chosen side to ignore", "chosen")
    out = copy.deepcopy(chosen[: results[-1] + 1])
    out.append(Step(kind="answer", text="I couldn't find anything useful, so I can't say for sure."))
    return out


def _repeat_call(chosen: list[Step], context: Trajectory) -> list[Step]:
    calls = [i for i, s in enumerate(chosen) if s.kind == "tool_call"]
    if not calls:
        raise StarterError("this starter repeats a tool call, but the chosen side has none", "chosen")
    out = copy.deepcopy(chosen)
    first = out[calls[0]]
    result_at = next((j for j in range(calls[0] + 1, len(out))
                      if out[j].kind == "tool_result" and out[j].call_id == first.call_id), None)
    again_id = _new_call_id(_call_ids(context, chosen), base=(first.call_id or "call") + "_again")
    again = Step(kind="tool_call", name=first.name, arguments=copy.deepcopy(first.arguments), call_id=again_id)
    if result_at is None:
        out.insert(calls[0] + 1, again)
        return out
    again_result = copy.deepcopy(out[result_at])
    again_result.call_id = again_id
    out[result_at + 1:result_at + 1] = [again, again_result]
    return out


def _break_json(chosen: list[Step], context: Trajectory) -> list[Step]:
    calls = [i for i, s in enumerate(chosen) if s.kind == "tool_call"]
    if not calls:
        raise StarterError("this starter breaks a call's JSON, but the chosen side has no call", "chosen")
    i = calls[0]
    out = copy.deepcopy(chosen[: i + 1])
    text = json.dumps(out[i].arguments, ensure_ascii=False)
    # Drop the closing brace: the arguments no longer parse (kept as the raw text the model wrote).
    out[i].arguments = text[:-1] if text.endswith("}") else text + "{"
    return out


def _copy(chosen: list[Step], context: Trajectory) -> list[Step]:
    return copy.deepcopy(chosen)


STARTERS: dict[str, Starter] = {
    "tool_needed": Starter("Drop the call and answer directly", _drop_calls),
    "tool_not_needed": Starter("Insert an unnecessary call", _insert_call),
    "missing_argument": Starter("Blank a required argument", _blank_argument),
    "irrelevant_tools": Starter("Force an unrelated call", _forced_call),
    "tool_result": Starter("Ignore the tool result", _ignore_result),
    "cost": Starter("Repeat a call", _repeat_call),
    "format": Starter("Break the call's JSON", _break_json),
    "other": Starter("Copy the chosen side", _copy),
}


def starter_steps(category: str, chosen: list[Step], context: Trajectory) -> list[Step]:
    """The typical bad variant of ``chosen`` for ``category`` (project categories copy the chosen side)."""
    return STARTERS.get(category, STARTERS["other"]).build(chosen, context)


# Category inference ------------------------------------------------------------------------------

LABEL_CATEGORIES = {
    "format_error": "format",
    "hallucinated_tool": "format",
    "arg_type_error": "format",
    "unexpected_arg": "format",
    "missing_required_arg": "missing_argument",
    "missing_clarification": "missing_argument",
    "unnecessary_tool_call": "tool_not_needed",
    "missed_tool_call": "tool_needed",
    "redundant_call": "cost",
    "wrong_call_count": "cost",
    "ungrounded_answer": "tool_result",
}


def guess_category(context: Trajectory, chosen: list[Step], rejected: list[Step]) -> str:
    """The likeliest category for a pair, from the rejected side's validity, labels and shape.

    A rejected side that fails schema validation can only be ``format``; then the error labels an
    annotator put on the rejected steps; then the shape (who calls tools, and how often).
    """
    probe = Pair(context=context, chosen=chosen, rejected=rejected, category=FORMAT)
    if any(f.severity == "error" for _, f in side_findings(probe, "rejected")):
        return FORMAT
    for s in rejected:
        for label in s.labels:
            if label in LABEL_CATEGORIES:
                return LABEL_CATEGORIES[label]
    calls_c = [s for s in chosen if s.kind == "tool_call"]
    calls_r = [s for s in rejected if s.kind == "tool_call"]
    if calls_c and not calls_r:
        return "tool_needed"
    if calls_r and not calls_c:
        answer = next((s.text for s in reversed(chosen) if s.kind == "answer"), "")
        return "missing_argument" if answer.rstrip().endswith("?") else "tool_not_needed"
    if calls_c and len(calls_r) > len(calls_c):
        return "cost"
    same_shape = [s.kind for s in chosen if s.kind != "think"] == [s.kind for s in rejected if s.kind != "think"]
    results_seen = any(s.kind == "tool_result" for s in chosen) or any(
        s.kind == "tool_result" for s in (context.turns[-1].steps if context.turns else []))
    if same_shape and results_seen and chosen and chosen[-1].kind == "answer":
        return "tool_result"  # the same moves; the answers differ with a result to ground them in
    return "other"


# Pairs from corrections --------------------------------------------------------------------------

ASSISTANT_KINDS = ("think", "tool_call", "answer")


def suggest_from_revisions(original: Trajectory, corrected: Trajectory) -> list[Pair]:
    """Pairs implied by an annotator's correction: the original continuation is rejected.

    For each turn whose user message is unchanged and whose steps first differ at an assistant
    step, the pair's context is the corrected trajectory up to that step, chosen is the corrected
    rest of the turn and rejected the original rest. Changes to labels, notes or train flags only,
    and changed tool results (the environment, not the model), suggest nothing.
    """
    out: list[Pair] = []
    for ti, (before, after) in enumerate(zip(original.turns, corrected.turns)):
        if before.user != after.user:
            continue
        ka, kb = [_sig_key(s) for s in before.steps], [_sig_key(s) for s in after.steps]
        if ka == kb:
            continue
        i = next((k for k, (x, y) in enumerate(zip(ka, kb)) if x != y), min(len(ka), len(kb)))
        first = [seq[i] for seq in (before.steps, after.steps) if i < len(seq)]
        if not any(s.kind in ASSISTANT_KINDS for s in first) or any(s.kind == "tool_result" for s in first):
            continue
        pair = fork(corrected, ti, i, source="correction")
        pair.rejected = copy.deepcopy(before.steps[i:])
        if not pair.chosen or not pair.rejected:
            continue
        pair.category = guess_category(pair.context, pair.chosen, pair.rejected)
        out.append(pair)
    return out


# Pairs from imported candidates -----------------------------------------------------------------

CANDIDATE_TYPES = ("direct", "tool_call", "clarify", "refusal")

_TYPE_CATEGORIES = {
    ("tool_call", "direct"): "tool_needed",
    ("tool_call", "clarify"): "tool_needed",
    ("tool_call", "refusal"): "tool_needed",
    ("direct", "tool_call"): "tool_not_needed",
    ("clarify", "tool_call"): "missing_argument",
    ("refusal", "tool_call"): "irrelevant_tools",
}


def candidate_steps(c: Any, where: str) -> list[Step]:
    """A candidate's steps: ``{"steps": [...]}`` or the ``think`` / ``tool_calls`` / ``answer`` shorthand."""
    if not isinstance(c, dict):
        raise PairError("a candidate must be an object", where)
    try:
        if "steps" in c:
            steps = steps_from_dicts(c["steps"], f"{where}.steps")
        else:
            steps = []
            if c.get("think"):
                steps.append(Step.from_dict({"kind": "think", "text": c["think"]}, f"{where}.think"))
            calls = c.get("tool_calls") or ([c["tool_call"]] if c.get("tool_call") else [])
            if not isinstance(calls, list):
                raise PairError("must be a list of {name, arguments}", f"{where}.tool_calls")
            for k, call in enumerate(calls):
                if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                    raise PairError("a call needs a string name", f"{where}.tool_calls[{k}].name")
                steps.append(Step.from_dict({"kind": "tool_call", "name": call["name"],
                                             "arguments": call.get("arguments", {}),
                                             "call_id": str(call.get("id") or f"call_{k + 1}")},
                                            f"{where}.tool_calls[{k}]"))
            if "answer" in c:
                steps.append(Step.from_dict({"kind": "answer", "text": c["answer"]}, f"{where}.answer"))
    except SchemaError as e:
        raise PairError(e.message, e.field) from None
    if not steps:
        raise PairError("a candidate needs steps, tool_calls or an answer", where)
    return steps


def _candidate_type(c: dict, steps: list[Step], where: str) -> str:
    t = c.get("type")
    if t is None:
        return "tool_call" if any(s.kind == "tool_call" for s in steps) else "direct"
    if t not in CANDIDATE_TYPES:
        raise PairError(f"unknown candidate type {t!r}; use one of {', '.join(CANDIDATE_TYPES)}", f"{where}.type")
    return t


def _candidate_field(field_: str, sides: dict[str, int]) -> str:
    """``rejected[0].arguments`` → ``candidates[3].steps[0].arguments``: point at the record, not the pair."""
    for side, i in sides.items():
        if field_ == side:
            return f"candidates[{i}]"
        if field_.startswith(side + "["):
            return f"candidates[{i}].steps" + field_[len(side):]
    return field_


def pairs_from_candidates(record: Any, categories: dict | None = None, override: str = "") -> list[Pair]:
    """One question with several candidate answers, the correct one marked → correct vs each wrong one.

    Raises ``PairError`` naming the field for a malformed record (see the module docstring for the
    shape). Every pair is checked with ``pair_errors``; ``override`` (a lead's reason) keeps a
    correct candidate that fails validation.
    """
    categories = CATEGORIES if categories is None else categories
    if not isinstance(record, dict):
        raise PairError("a record must be an object")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise PairError("must be a non-empty string (the user message the candidates answer)", "question")
    try:
        context = Trajectory.from_dict({"system": record.get("system") or "", "tools": record.get("tools") or [],
                                        "turns": list(record.get("history") or []) + [{"user": question}],
                                        "meta": {"source": "imported-preferences",
                                                 "external_id": str(record.get("id") or "")}})
    except SchemaError as e:
        raise PairError(e.message, e.field.replace("turns", "history", 1)) from None
    cands = record.get("candidates")
    if not isinstance(cands, list) or len(cands) < 2:
        raise PairError("must be a list of at least two candidates", "candidates")
    steps = [candidate_steps(c, f"candidates[{i}]") for i, c in enumerate(cands)]
    types = [_candidate_type(c, s, f"candidates[{i}]") for i, (c, s) in enumerate(zip(cands, steps))]
    correct = record.get("correct")
    ids = [str(c.get("id")) if c.get("id") is not None else None for c in cands]
    if isinstance(correct, bool) or correct is None:
        raise PairError("must name the correct candidate (its id, or its 0-based index)", "correct")
    if isinstance(correct, int):
        if not 0 <= correct < len(cands):
            raise PairError(f"index {correct} is out of range (0 to {len(cands) - 1})", "correct")
        ci = correct
    elif str(correct) in ids:
        ci = ids.index(str(correct))
    else:
        raise PairError(f"no candidate has id {correct!r}", "correct")
    fixed = record.get("category")
    if fixed is not None and fixed not in categories:
        raise PairError(f"unknown category {fixed!r}; use one of {', '.join(categories)}", "category")
    base_id = str(record.get("id") or "")
    out = []
    for i, wrong in enumerate(steps):
        if i == ci:
            continue
        cat = fixed or _TYPE_CATEGORIES.get((types[ci], types[i])) or guess_category(context, steps[ci], wrong)
        pair = Pair(context=copy.deepcopy(context), chosen=copy.deepcopy(steps[ci]), rejected=copy.deepcopy(wrong),
                    category=cat, source="imported",
                    external_id=f"{base_id}:{ids[ci] or ci}>{ids[i] or i}" if base_id else "", override=override)
        label_rejected(pair)
        errors = pair_errors(pair, categories)
        if errors:
            e = errors[0]
            raise PairError(e.message, _candidate_field(e.field, {"chosen": ci, "rejected": i}))
        out.append(pair)
    return out


# Audit of a rendered pair ------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditProblem:
    code: str
    message: str
    severity: str = "error"

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "severity": self.severity}


def audit_rendered_pair(prompt: str, prompt_chosen: str, prompt_rejected: str, *,
                        tokens_chosen: int | None = None, tokens_rejected: int | None = None,
                        max_length: int | None = None) -> list[AuditProblem]:
    """Check one rendered DPO pair: same prompt on both sides, different completions, fits the length.

    ``prompt`` is the context rendered with the generation prompt; ``prompt_chosen`` and
    ``prompt_rejected`` the context plus each side, rendered in one go (as DPOTrainer does). Token
    counts are of the full prompt+side sequences. Rendering failures are the caller's to report
    (code ``render_failed``), since only the caller holds the template.

    >>> [p.code for p in audit_rendered_pair("P:", "P: yes", "P: yes")]
    ['identical_sides']
    >>> [p.code for p in audit_rendered_pair("P:", "P: yes", "Q: no")]
    ['prompt_differs']
    """
    problems: list[AuditProblem] = []
    for side, text in (("chosen", prompt_chosen), ("rejected", prompt_rejected)):
        if not text.startswith(prompt):
            at = next((k for k, (x, y) in enumerate(zip(prompt, text)) if x != y), min(len(prompt), len(text)))
            problems.append(AuditProblem(
                "prompt_differs", f"the {side} render does not start with the prompt render (they part at "
                f"character {at}: {prompt[at:at + 40]!r} vs {text[at:at + 40]!r}), so the two sides would not "
                "share the same prompt"))
    if prompt_chosen[len(prompt):] == prompt_rejected[len(prompt):]:
        problems.append(AuditProblem("identical_sides", "chosen and rejected render to the same text"))
    if max_length is not None:
        for side, n in (("chosen", tokens_chosen), ("rejected", tokens_rejected)):
            if n is not None and n > max_length:
                problems.append(AuditProblem(
                    "too_long", f"prompt + {side} is {n} tokens, over max_length {max_length}: "
                    "DPOTrainer would cut the end of the completion"))
    return problems


@dataclass
class CandidatesResult:
    """Pairs read from a file of candidate records: ``(line, pair)`` and problems naming line and field."""

    file: str
    pairs: list[tuple[int, Pair]] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    records: int = 0
    # The formats of the records read, in order ("candidates", "when2call", "toolbench" ...).
    formats: dict[str, None] = field(default_factory=dict)


def pairs_from_record(record: Any, categories: dict | None = None, override: str = "") -> tuple[str, list[Pair]]:
    """``(format, pairs)`` for one record of any format that holds preference data.

    A record with ``candidates`` is read by :func:`pairs_from_candidates`; any other is detected as
    an import format (``annotate.formats``) whose ``pairs`` reader gives its pairs (When2Call's
    test questions and preference rows, ToolBench answer trees). Raises ``PairError``. ``override``
    (a lead's reason) keeps chosen sides that fail validation.
    """
    from annotate import formats

    name = formats.detect(record) if isinstance(record, dict) and "candidates" not in record else None
    if name is None:  # the candidates shape, or nothing known: its reader names what is missing
        return "candidates", pairs_from_candidates(record, categories, override)
    fmt = formats.FORMATS[name]
    if fmt.pairs is None:
        raise PairError(f"a {fmt.title or fmt.name} record holds no preference pairs (import it as trajectories): "
                        "expected 'question' with 'candidates' and 'correct', a When2Call test question or "
                        "preference row, or a ToolBench answer tree", "candidates")
    return fmt.name, fmt.pairs(record, categories, override)


def parse_candidates(data: bytes, filename: str, categories: dict | None = None, *,
                     skip_invalid: bool = False, override: str = "") -> CandidatesResult:
    """Read a JSON Lines file, a JSON array or one JSON object of preference records into pairs;
    never raises on user data (see :func:`pairs_from_record` for the record shapes).

    All-or-nothing: when any record is bad, no pair comes back and every problem is listed, unless
    ``skip_invalid`` asks for the pairs of the good records (the bad ones are still listed).

    >>> r = parse_candidates(b'{"question": "hi", "candidates": [{"answer": "a"}, {"answer": "b"}], "correct": 0}\\n'
    ...                      b'{"question": "x"}\\n', "p.jsonl")
    >>> r.pairs, r.errors
    ([], [{'file': 'p.jsonl', 'line': 2, 'field': 'candidates', 'message': 'must be a list of at least two candidates'}])
    """
    out = CandidatesResult(file=filename)

    def problem(line, field_, message):
        out.errors.append({"file": filename, "line": line, "field": field_, "message": message})

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        problem(data.count(b"\n", 0, e.start) + 1, "", f"not UTF-8: byte 0x{data[e.start]:02x}")
        return out
    stripped = text.lstrip()
    whole = None
    if stripped.startswith("{") and "\n" in stripped.rstrip():
        try:  # one pretty-printed object (a ToolBench answer file); JSON Lines fails here at once
            whole = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            whole = None
    if isinstance(whole, dict):
        records = [(1 + text[:len(text) - len(stripped)].count("\n"), whole)]
    elif stripped.startswith("["):
        try:
            items = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            problem(getattr(e, "lineno", None), "", f"not valid JSON: {getattr(e, 'msg', 'nested too deeply')}")
            return out
        records = [(i + 1, r) for i, r in enumerate(items)]  # "line" is the record's position here
    else:
        records = []
        for i, line in enumerate(text.split("\n")):
            if not line.strip():
                continue
            try:
                records.append((i + 1, json.loads(line)))
            except (json.JSONDecodeError, RecursionError) as e:
                problem(i + 1, "", f"not valid JSON: {getattr(e, 'msg', 'nested too deeply')}")
    out.records = len(records) + len(out.errors)
    for line, rec in records:
        try:
            name, got = pairs_from_record(rec, categories, override)
        except PairError as e:
            problem(line, e.field, e.message)
            continue
        except RecursionError:
            problem(line, "", "nested too deeply to read")
            continue
        except Exception as e:  # a reader bug must not lose the report for the other records
            problem(line, "", f"could not read this record ({type(e).__name__}: {e}); please report it")
            continue
        out.formats[name] = None
        out.pairs.extend((line, p) for p in got)
    if out.errors and not skip_invalid:
        out.pairs = []
    return out
