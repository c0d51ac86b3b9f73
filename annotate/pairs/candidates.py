"""Pairs from one question with several candidate answers, the correct one marked (pure; no Django).

A candidates record (``pairs_from_candidates``) is one JSON object per question:

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
from typing import Any

from annotate.pairs.core import (
    CATEGORIES,
    Pair,
    PairError,
    guess_category,
    label_rejected,
    pair_errors,
    steps_from_dicts,
)
from annotate.trajectory import SchemaError, Step, Trajectory

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
