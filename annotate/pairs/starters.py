"""Starters: the typical bad variant of a chosen side, one per category (pure; no Django).

The builder's "starter" fills the rejected side with it (drop the call, insert an unnecessary
one, blank a required argument, break the JSON ...), for the lead to edit from there.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Callable

from annotate.pairs.core import PairError
from annotate.trajectory import Step, Trajectory


class StarterError(PairError):
    """A starter does not apply to this chosen side (e.g. "break the JSON" with no call)."""


@dataclass(frozen=True)
class Starter:
    label: str
    build: Callable[[list[Step], Trajectory], list[Step]]


def new_call_id(existing: set[str], base: str = "call") -> str:
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
                call_id=new_call_id(_call_ids(context, chosen)))
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


IGNORING_ANSWER = "I couldn't find anything useful, so I can't say for sure."


def _result_in_context(context: Trajectory) -> bool:
    """Whether the turn being continued already holds a tool result before the cut (a fork at the answer)."""
    return bool(context.turns) and any(s.kind == "tool_result" for s in context.turns[-1].steps)


def _ignore_result(chosen: list[Step], context: Trajectory) -> list[Step]:
    results = [i for i, s in enumerate(chosen) if s.kind == "tool_result"]
    if results:
        out = copy.deepcopy(chosen[: results[-1] + 1])
    elif _result_in_context(context):
        # Forked at the answer: the result sits in the shared context; the bad answer ignores it.
        out = _leading_thinks(chosen)
    else:
        raise StarterError("this starter needs a tool result to ignore, on the chosen side or earlier in "
                           "the turn; fork at the answer that follows a result", "chosen")
    out.append(Step(kind="answer", text=IGNORING_ANSWER))
    return out


def _repeat_call(chosen: list[Step], context: Trajectory) -> list[Step]:
    calls = [i for i, s in enumerate(chosen) if s.kind == "tool_call"]
    if not calls:
        raise StarterError("this starter repeats a tool call, but the chosen side has none", "chosen")
    out = copy.deepcopy(chosen)
    first = out[calls[0]]
    result_at = next((j for j in range(calls[0] + 1, len(out))
                      if out[j].kind == "tool_result" and out[j].call_id == first.call_id), None)
    again_id = new_call_id(_call_ids(context, chosen), base=(first.call_id or "call") + "_again")
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
