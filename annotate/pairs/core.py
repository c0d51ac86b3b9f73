"""The preference pair: categories, the pair itself, forking, comparing sides and validation (pure; no Django).

A pair forks a canonical trajectory at a cut point ``(turn, step)``: the **context** is every
earlier turn plus the cut turn's user message and its steps before ``step``; the **chosen** and
**rejected** continuations are what the assistant does next in that turn (think, tool calls, tool
results, answer). Later turns are not part of a pair: they depended on the original continuation.
``guess_category`` says which category a pair most likely teaches.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from annotate.findings import validate
from annotate.trajectory import SchemaError, Step, Trajectory, Turn
from core.errors import InputError

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

SOURCES = ("manual", "correction", "imported", "evaluation", "rollout")
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


def signature_key(s: Step) -> str:
    return json.dumps(step_signature(s), sort_keys=True, ensure_ascii=False)


def same_content(a: list[Step], b: list[Step]) -> bool:
    return [signature_key(s) for s in a] == [signature_key(s) for s in b]


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
    ka, kb = [signature_key(s) for s in chosen], [signature_key(s) for s in rejected]
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


def call_or_words(chosen: list[Step], rejected: list[Step]) -> str | None:
    """The category when one side calls a tool and the other does not: ``tool_needed`` (the chosen
    side calls), ``missing_argument`` (the chosen side asks a question instead) or
    ``tool_not_needed`` (it answers instead); None when both sides call or neither does."""
    calls_c = any(s.kind == "tool_call" for s in chosen)
    calls_r = any(s.kind == "tool_call" for s in rejected)
    if calls_c and not calls_r:
        return "tool_needed"
    if calls_r and not calls_c:
        answer = next((s.text for s in reversed(chosen) if s.kind == "answer"), "")
        return "missing_argument" if answer.rstrip().endswith("?") else "tool_not_needed"
    return None


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
    if category := call_or_words(chosen, rejected):
        return category
    calls_c = [s for s in chosen if s.kind == "tool_call"]
    calls_r = [s for s in rejected if s.kind == "tool_call"]
    if calls_c and len(calls_r) > len(calls_c):
        return "cost"
    same_shape = [s.kind for s in chosen if s.kind != "think"] == [s.kind for s in rejected if s.kind != "think"]
    results_seen = any(s.kind == "tool_result" for s in chosen) or any(
        s.kind == "tool_result" for s in (context.turns[-1].steps if context.turns else []))
    if same_shape and results_seen and chosen and chosen[-1].kind == "answer":
        return "tool_result"  # the same moves; the answers differ with a result to ground them in
    return "other"
