"""References: what the model should have done at one decision point (pure; no Django).

A :class:`Reference` comes from a canonical trajectory (:func:`reference_at`,
:func:`references_from_trajectory`: the gold continuation of a turn), from a BFCL item with its
possible answers (:func:`reference_from_bfcl`) or from an imported benchmark item's gold
(:func:`reference_from_gold_answers`). :func:`reference_output` writes what an oracle would say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from annotate.trajectory import CASE_TYPES, Trajectory, normalize_tool
from evaluation.scoring.decisions import classify_answer
from evaluation.scoring.when2call import DECISION_OF as WHEN2CALL_DECISIONS
from evaluation.scoring.when2call import SOURCE as WHEN2CALL

@dataclass
class Reference:
    """What the model should do at one decision point.

    ``calls``: one gold instance of the calls (``[{"name", "arguments"}]``); ``acceptable``: BFCL
    possible answers (``[{name: {arg: [values]}}]``), built from ``calls`` when absent.
    ``tool_results``: results visible in the prompt (``{"name", "text", "ok", "recent"}``,
    ``recent`` for the current turn). ``context_calls``: calls already made, whose results are
    known. ``user_text``: what the user said (values the user gave are not evidence of grounding).
    ``lenient_decline``: a plain answer is as good as a refusal (BFCL irrelevance).
    ``source``: the benchmark whose official checker decides ``correct`` (``bfcl``: BFCL's AST checker,
    see :func:`evaluation.scoring.score.bfcl_correct`); empty: our own metrics decide it.
    """

    item_id: str = ""
    case_types: list[str] = field(default_factory=lambda: ["tool_required"])
    tools: list[dict] = field(default_factory=list)
    decision: str = "call"
    calls: list[dict] = field(default_factory=list)
    acceptable: list[dict] | None = None
    answer: str = ""
    tool_results: list[dict] = field(default_factory=list)
    context_calls: list[dict] = field(default_factory=list)
    user_text: str = ""
    missing_args: list[str] = field(default_factory=list)
    lenient_decline: bool = False
    # Where the decision sits in its trajectory (``turns[turn_index].steps[step_index]``), if it has one.
    turn_index: int | None = None
    step_index: int | None = None
    source: str = ""

    def __post_init__(self):
        self.tools = [normalize_tool(t) for t in self.tools]
        if self.calls and self.decision != "call":
            self.decision = "call"

    @property
    def case_type(self) -> str:
        return self.case_types[0] if self.case_types else ""

    @property
    def after_results(self) -> bool:
        return any(r.get("recent") for r in self.tool_results)

    def tool(self, name: str) -> dict | None:
        for t in self.tools:
            if t["name"] == name:
                return t
        return None

    def to_dict(self) -> dict:
        return {
            "item_id": self.item_id,
            "case_types": list(self.case_types),
            "tools": self.tools,
            "decision": self.decision,
            "calls": self.calls,
            "acceptable": self.acceptable,
            "answer": self.answer,
            "tool_results": self.tool_results,
            "context_calls": self.context_calls,
            "user_text": self.user_text,
            "missing_args": list(self.missing_args),
            "lenient_decline": self.lenient_decline,
            "turn_index": self.turn_index,
            "step_index": self.step_index,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict | str) -> "Reference":
        if isinstance(d, str):
            d = json.loads(d)
        known = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in d.items() if k in known})


def reference_from_bfcl(item: dict, answer: dict | None = None) -> Reference:
    """A reference for one BFCL question (``{"id", "question", "function"}``) and its possible
    answer (``{"id", "ground_truth"}``); without an answer (irrelevance) the tools must not be used.
    """
    user_text = "\n".join(
        m.get("content", "") for turn in item.get("question", []) for m in turn if m.get("role") == "user"
    )
    tools = item.get("function") or []
    if isinstance(tools, dict):
        tools = [tools]
    if answer is None:
        return Reference(
            item_id=str(item.get("id", "")),
            case_types=["irrelevant_tools"],
            tools=tools,
            decision="decline",
            user_text=user_text,
            lenient_decline=True,
            source="bfcl",
        )
    truth = answer["ground_truth"]
    truth = truth if isinstance(truth, list) else [truth]
    required = {
        t.get("name"): set((t.get("parameters") or {}).get("required") or []) for t in tools if isinstance(t, dict)
    }
    calls = [
        {"name": name, "arguments": _first_acceptable_args(args, required.get(name, set()))}
        for gt in truth
        for name, args in gt.items()
    ]
    return Reference(
        item_id=str(item.get("id", "")),
        case_types=["tool_required"],
        tools=tools,
        decision="call",
        calls=calls,
        acceptable=truth,
        user_text=user_text,
        source="bfcl",
    )


def _first_acceptable_args(args: dict, required: set[str] = frozenset()) -> dict:
    """Each argument's first acceptable value; optional arguments that may be omitted are left out.

    A few BFCL answers mark an argument the schema requires as omittable (``simple_python_17``'s
    ``formatted``); BFCL's own checker then rejects the omission, so those take their first value.
    """
    out = {}
    for k, values in args.items():
        present = [v for v in values if not (isinstance(v, str) and v == "")]
        if not present or (len(present) < len(values) and k not in required):
            continue
        out[k] = _first_acceptable_value(present[0])
    return out


def _first_acceptable_value(v: Any) -> Any:
    # BFCL writes a dict argument's acceptable values per key, and a list of dicts likewise.
    if isinstance(v, dict) and v and all(isinstance(x, list) for x in v.values()):
        return _first_acceptable_args(v)
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        return [_first_acceptable_value(x) for x in v]
    return v


def references_from_trajectory(traj: Trajectory, *, include_labelled: bool = False) -> list[Reference]:
    """One reference per decision point of a trajectory: after each user message and after each
    block of tool results. Points whose gold steps carry error labels or are not trained on
    are skipped (they show what not to do), unless ``include_labelled``. An imported benchmark
    item with possible answers and no assistant steps gives one (:func:`reference_from_gold_answers`).
    """
    refs = []
    for ti, turn in enumerate(traj.turns):
        expecting = True
        for si, step in enumerate(turn.steps):
            if step.kind == "think":
                continue
            if step.kind == "tool_result":
                expecting = True
                continue
            if not expecting:
                continue
            expecting = False
            gold = _gold_steps(turn.steps, si)
            if not include_labelled and any(s.labels or not s.train for s in gold):
                continue
            refs.append(reference_at(traj, ti, si))
    gold = reference_from_gold_answers(traj)
    if gold is not None:
        refs.append(gold)
    return refs


def reference_from_gold_answers(traj: Trajectory) -> Reference | None:
    """The reference of an imported benchmark item: a trajectory whose last turn has no assistant
    steps and whose ``meta.reference`` holds BFCL-style possible answers (``{"ground_truth":
    [{fn: {arg: [values]}}]}``, empty where no tool should be called), as the BFCL importer keeps them.
    """
    gold = traj.meta.reference
    if not traj.turns or traj.turns[-1].steps or not isinstance(gold, dict):
        return None
    truth = gold.get("ground_truth")
    if not isinstance(truth, list) or not all(isinstance(g, dict) for g in truth):
        return None
    ti = len(traj.turns) - 1
    item = {
        "id": f"{traj.meta.external_id or 'trajectory'}#t{ti}s0",
        "question": [[{"role": "user", "content": t.user} for t in traj.turns]],
        "function": traj.tools,
    }
    ref = reference_from_bfcl(item, {"ground_truth": truth} if truth else None)
    ref.case_types = [c for c in traj.meta.case_types if c in CASE_TYPES] or ref.case_types
    ref.turn_index, ref.step_index = ti, 0
    return ref


def _gold_steps(steps, si):
    if steps[si].kind == "answer":
        return [steps[si]]
    out = []
    for s in steps[si:]:
        if s.kind == "tool_call":
            out.append(s)
        elif s.kind == "think":
            continue
        else:
            break
    return out


def reference_at(traj: Trajectory, turn_index: int, step_index: int) -> Reference:
    """The reference for the decision at ``turns[turn_index].steps[step_index]`` (a tool call
    or an answer; reasoning steps before it are skipped): everything before is the prompt."""
    turn = traj.turns[turn_index]
    si = step_index
    while si < len(turn.steps) and turn.steps[si].kind == "think":
        si += 1
    if si >= len(turn.steps) or turn.steps[si].kind not in ("tool_call", "answer"):
        raise ValueError(f"turns[{turn_index}].steps[{step_index}] is not a decision (a tool call or an answer)")
    gold = _gold_steps(turn.steps, si)
    results, context_calls = [], []
    for ti, t in enumerate(traj.turns[: turn_index + 1]):
        for s in t.steps[: si if ti == turn_index else None]:
            if s.kind == "tool_result":
                results.append({"name": s.name, "text": s.text, "ok": s.ok, "recent": ti == turn_index})
                if not s.ok:
                    # A failed call's result is not known: trying it again is not a repeat.
                    _forget_call(context_calls, s)
            elif s.kind == "tool_call":
                context_calls.append({"name": s.name, "arguments": s.arguments, "call_id": s.call_id})
    user_text = "\n".join(t.user for t in traj.turns[: turn_index + 1])
    ref = Reference(
        item_id=f"{traj.meta.external_id or 'trajectory'}#t{turn_index}s{si}",
        case_types=[c for c in traj.meta.case_types if c in CASE_TYPES] or ["tool_required"],
        tools=traj.tools,
        tool_results=results,
        context_calls=context_calls,
        user_text=user_text,
        turn_index=turn_index,
        step_index=si,
    )
    if gold[0].kind == "tool_call":
        ref.calls = [{"name": s.name, "arguments": s.arguments if isinstance(s.arguments, dict) else {}} for s in gold]
        ref.decision = "call"
        return _from_when2call(traj, ref)
    ref.answer = gold[0].text
    extra_missing = traj.meta.extra.get("missing_args") if isinstance(traj.meta.extra, dict) else None
    if isinstance(extra_missing, list):
        ref.missing_args = [str(a) for a in extra_missing]
    elif "clarification" in ref.case_types:
        ref.missing_args = _infer_missing_args(traj, turn_index, user_text)
    ref.decision = classify_answer(ref.answer, ref)
    return _from_when2call(traj, ref)


def _from_when2call(traj: Trajectory, ref: Reference) -> Reference:
    """An item imported from When2Call: its gold category (``meta.reference.correct_answer``) is the
    gold decision, whatever the words of the gold answer sound like."""
    gold = traj.meta.reference if isinstance(traj.meta.reference, dict) else {}
    decision = WHEN2CALL_DECISIONS.get(gold.get("correct_answer"))
    if decision is not None and (decision == "call") == (ref.decision == "call"):
        ref.decision, ref.source = decision, WHEN2CALL
    return ref


def _forget_call(calls: list[dict], result) -> None:
    for i in range(len(calls) - 1, -1, -1):
        c = calls[i]
        if (result.call_id and c.get("call_id") == result.call_id) or (not result.call_id and c["name"] == result.name):
            del calls[i]
            return


def _infer_missing_args(traj: Trajectory, turn_index: int, user_text: str) -> list[str]:
    """The required arguments of the next call in the trajectory whose values the user has not
    given yet: what a clarifying question should ask for."""
    said = user_text.lower()
    for t in traj.turns[turn_index:]:
        for s in t.steps:
            if s.kind != "tool_call" or not isinstance(s.arguments, dict):
                continue
            tool = traj.tool_by_name(s.name) or {}
            required = (tool.get("parameters") or {}).get("required") or list(s.arguments)
            return [a for a in required if a in s.arguments and str(s.arguments[a]).lower() not in said]
    return []


def reference_output(ref: Reference, style: str = "tool_call") -> str:
    """What an oracle says: the gold calls written in ``style`` (``tool_call``: Hermes/Qwen
    ``<tool_call>`` JSON blocks; ``python``: ``[f(a=1)]``; ``json``: a bare JSON list), or the
    gold answer (a standard refusal or question where the reference has no text).
    """
    if ref.decision == "call":
        if style == "python":
            return "[" + ", ".join(_python_call(c) for c in ref.calls) + "]"
        if style == "json":
            return json.dumps([{"name": c["name"], "arguments": c["arguments"]} for c in ref.calls], ensure_ascii=False)
        return "\n".join(
            "<tool_call>\n" + json.dumps({"name": c["name"], "arguments": c["arguments"]}, ensure_ascii=False) + "\n</tool_call>"
            for c in ref.calls
        )
    if ref.answer:
        return ref.answer
    if ref.decision == "ask":
        wanted = ", ".join(a.replace("_", " ") for a in ref.missing_args) or "details"
        return f"Could you tell me the {wanted}?"
    if ref.decision == "decline":
        return "I'm sorry, none of the available tools can help with that."
    return ""


def _python_call(call: dict) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in call["arguments"].items())
    return f"{call['name']}({args})"

