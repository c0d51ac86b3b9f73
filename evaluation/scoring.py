"""Score a parsed model output against a reference (pure; no Django).

A :class:`Reference` is what the model should have done at one decision point: call these
tools with these arguments, answer, ask for a missing argument, or decline. It comes from a
canonical trajectory (:func:`reference_at`, :func:`references_from_trajectory`: the gold
continuation of a turn) or from a BFCL item with its possible answers (:func:`reference_from_bfcl`).

:func:`score_output` returns an :class:`ItemScore`: boolean metrics (``None`` where a metric
does not apply), call counts, the decision taken, and the annotators' error labels
(``annotate.trajectory.DEFAULT_ERROR_LABELS``) for whatever went wrong. :func:`aggregate`,
:func:`breakdown`, :func:`label_table` and :func:`confusion` turn many of them into the
dashboard's tables, with 95 % Wilson intervals for rates.

Argument matching follows BFCL's AST checker: each argument has a list of acceptable values
(``""`` among them: may be omitted); strings compare after BFCL's normalisation (case, spaces
and ``,./-_*^`` ignored, ``'`` read as ``"``); an int is accepted for a float; a value of the
acceptable value's own type is accepted where the schema says otherwise (BFCL's "variable"
rule); parallel calls match in any order.

Heuristics, where the reference is free text (documented because a user will see them):

- **asks**: the output makes no call and either a question in it mentions a missing required
  argument (its name, the words of its name, or "when"/"where" for dates/places), or its last
  sentence is a question that is not a pleasantry ("anything else?", "how can I help?").
- **declines**: no call, no question of that kind, and a refusal phrase ("I can't", "unable
  to", "no tool", "not available", "sorry", "unfortunately" …), before any tool ran in the turn;
  after a tool ran, reporting a failure is an answer.
- **grounded**: the answer repeats at least one of the *key values* of the tool results: the
  numbers and content words of the results that the gold answer uses and the user did not say
  (all result values where there is no gold answer). After a failed call, naming the failure
  ("error", "failed", "unavailable" …) also counts.
- **answer correct**: the answer repeats every key value the gold answer takes from the tool
  results; where the gold reports a failed call, it reports the failure; otherwise every number
  of the gold answer appears in it and at least 60 % of the gold answer's content words do.

>>> ref = Reference(tools=[{"name": "get_weather", "parameters": {"type": "object",
...     "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
...     calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
>>> from evaluation.parse import parse_output
>>> score_output(parse_output('get_weather(city="paris")'), ref).correct
True
>>> score_output(parse_output('get_weather()'), ref).labels
['missing_required_arg']
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from annotate.findings import BFCL_TYPES, argument_errors
from annotate.trajectory import CASE_TYPES, DEFAULT_ERROR_LABELS, Trajectory, normalize_tool
from evaluation.parse import ParsedOutput, ToolCall

DECISIONS = ("call", "answer", "ask", "decline")

# Per-item boolean metrics, in dashboard order.
METRICS = (
    "format_ok",  # the output reads in a tool-call format (no malformed call, not empty)
    "schema_ok",  # every call names a known tool with schema-valid arguments   (calls made)
    "tool_selection_ok",  # called the gold tools and no other                (gold calls)
    "args_ok",  # the calls to gold tools carry acceptable arguments         (a gold tool called)
    "call_count_ok",  # as many distinct calls as the gold                   (gold calls)
    "calls_ok",  # BFCL's AST accuracy: every gold call matched, none extra  (gold calls)
    "no_tool_ok",  # made no call where none was wanted                      (gold makes no call)
    "clarification_ok",  # asked for the missing argument                    (gold asks)
    "decline_ok",  # declined rather than forcing a call                     (gold declines)
    "grounded",  # the answer uses the tool results                          (gold answers after results)
    "answer_ok",  # the answer agrees with the gold answer                   (gold answers)
    "decision_ok",  # call / answer / ask / decline as the gold
    "correct",  # every applicable metric passed and no redundant call
)
COUNTS = ("n_calls", "n_redundant")

LABEL_ORDER = [code for code, _ in DEFAULT_ERROR_LABELS]

Z95 = 1.959963984540054


# ---------------------------------------------------------------------------------------------
# References


@dataclass
class Reference:
    """What the model should do at one decision point.

    ``calls``: one gold instance of the calls (``[{"name", "arguments"}]``); ``acceptable``: BFCL
    possible answers (``[{name: {arg: [values]}}]``), built from ``calls`` when absent.
    ``tool_results``: results visible in the prompt (``{"name", "text", "ok", "recent"}``,
    ``recent`` for the current turn). ``context_calls``: calls already made, whose results are
    known. ``user_text``: what the user said (values the user gave are not evidence of grounding).
    ``lenient_decline``: a plain answer is as good as a refusal (BFCL irrelevance).
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
        return ref
    ref.answer = gold[0].text
    extra_missing = traj.meta.extra.get("missing_args") if isinstance(traj.meta.extra, dict) else None
    if isinstance(extra_missing, list):
        ref.missing_args = [str(a) for a in extra_missing]
    elif "clarification" in ref.case_types:
        ref.missing_args = _infer_missing_args(traj, turn_index, user_text)
    ref.decision = classify_answer(ref.answer, ref)
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


# ---------------------------------------------------------------------------------------------
# Decisions: call / answer / ask / decline

_PLEASANTRY_RE = re.compile(
    r"anything else|(?:can|may|could) i (?:help|assist)|help you|assist you|further (?:questions|assistance|help)"
    r"|other questions|let me know",
    re.IGNORECASE,
)
_DECLINE_RE = re.compile(
    r"\b(?:can(?:no|')t|cannot|unable to|not able to|(?:don't|do not|doesn't|does not) have (?:access|a tool|"
    r"any tool|the (?:ability|tools?|capability|functions?))|no (?:available |suitable |relevant |such )?"
    r"(?:tools?|functions?|capabilit(?:y|ies)|access)\b|none of the (?:available |provided |given )?"
    r"(?:tools|functions)|(?:not|isn't|aren't) (?:available|supported|possible)|outside (?:of )?(?:my|the) "
    r"(?:scope|capabilities)|beyond (?:my|the) (?:capabilities|abilities|scope)|i'm afraid|i am afraid"
    r"|unfortunately|sorry)",
    re.IGNORECASE,
)
_FAILURE_RE = re.compile(
    r"\b(?:error|errors|failed|fails|failure|unavailable|timed? ?out|timeout|could ?n[o']t|couldn't|unable|"
    r"did not work|didn't work|try again|went wrong|not respond)",
    re.IGNORECASE,
)
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.?!])\s+|\n+")
_PLACE_WORDS = {"city", "location", "place", "address", "destination", "origin", "country", "region", "airport"}
_TIME_WORDS = {"date", "time", "day", "year", "month", "when", "datetime", "deadline", "start", "end"}


def classify_answer(answer: str, ref: Reference | None = None) -> str:
    """``ask``, ``decline`` or ``answer`` for a reply that makes no call (see the module notes)."""
    text = (answer or "").strip()
    if not text:
        return "answer"
    missing = ref.missing_args if ref is not None else []
    sentences = [s.strip() for s in _SENTENCE_SPLIT_RE.split(text) if s.strip()]
    questions = [s for s in sentences if s.endswith("?") and not _PLEASANTRY_RE.search(s)]
    if questions and missing and any(_mentions_arg(q, a) for q in questions for a in missing):
        return "ask"
    after_results = ref.after_results if ref is not None else False
    if not after_results and _DECLINE_RE.search(text):
        return "decline"
    if sentences and sentences[-1] in questions:
        return "ask"
    return "answer"


def decision_of(parsed: ParsedOutput, ref: Reference | None = None) -> str:
    if parsed.call_attempted or parsed.tool_calls:
        return "call"
    return classify_answer(parsed.answer, ref)


def _mentions_arg(text: str, arg: str) -> bool:
    words = [w for w in re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", arg) if w]
    candidates = {arg.lower(), " ".join(w.lower() for w in words)}
    candidates |= {w.lower() for w in words if len(w) >= 3 or w.lower() == "id"}
    lowered = {w.lower() for w in words}
    if lowered & _TIME_WORDS:
        candidates.add("when")
    if lowered & _PLACE_WORDS:
        candidates.add("where")
    low = text.lower()
    return any(re.search(rf"\b{re.escape(c)}", low) for c in candidates if c)


# ---------------------------------------------------------------------------------------------
# Value normalisation and argument matching (BFCL's rules)

_BFCL_STRIP_RE = re.compile(r"[ ,./\-_*^]")


def standardize_string(s: str) -> str:
    """BFCL's string normalisation: drop spaces and ``,./-_*^``, lowercase, ``'`` -> ``"``."""
    return _BFCL_STRIP_RE.sub("", s).lower().replace("'", '"')


def _norm(v: Any) -> Any:
    """A comparable form: strings standardised, numbers as floats (int/float leniency), bools kept
    apart from numbers, containers recursively."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return standardize_string(v)
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return ("dict", tuple(sorted((str(k), _norm(x)) for k, x in v.items())))
    return v


def call_key(call: ToolCall | dict) -> tuple:
    """Identity of a call for spotting repeats: its name and normalised arguments."""
    name = call.name if isinstance(call, ToolCall) else call.get("name", "")
    args = call.arguments if isinstance(call, ToolCall) else call.get("arguments") or {}
    return (name, _norm(args if isinstance(args, dict) else {}))


_PY_TYPES = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def _schema_types(prop: dict) -> list[str] | None:
    t = prop.get("type") if isinstance(prop, dict) else None
    types = t if isinstance(t, list) else [t] if t is not None else []
    out = []
    for x in types:
        x = BFCL_TYPES.get(x, x) if isinstance(x, str) else x
        if x is None:  # BFCL's "any"
            return None
        out.append(x)
    if isinstance(prop, dict) and prop.get("nullable"):
        out.append("null")
    return out or None


def _type_ok(value: Any, types: list[str] | None) -> bool:
    if types is None:
        return True
    for t in types:
        py = _PY_TYPES.get(t)
        if py is None:
            return True  # a type we do not know: no constraint
        if isinstance(value, bool) and bool not in py:
            continue
        if isinstance(value, py):
            return True
    return False


def _value_matches(value: Any, candidates: list, nested: bool) -> bool:
    nv = _norm(value)
    for cand in candidates:
        if isinstance(cand, str) and cand == "":
            continue
        if _norm(cand) == nv:
            return True
        if nested and isinstance(cand, dict) and isinstance(value, dict) and _dict_matches(value, cand):
            return True
        if (
            nested
            and isinstance(cand, list)
            and isinstance(value, list)
            and cand
            and all(isinstance(c, dict) for c in cand)
            and len(cand) == len(value)
            and all(isinstance(v, dict) and _dict_matches(v, c) for v, c in zip(value, cand))
        ):
            return True
    return False


def _dict_matches(value: dict, cand: dict) -> bool:
    """BFCL's dict rule: each key given is known and has an acceptable value; keys not given may
    be omitted (``""`` among their values)."""
    if not all(isinstance(v, list) for v in cand.values()):
        return False
    for k, v in value.items():
        if k not in cand or not _value_matches(v, cand[k], True):
            return False
    return all(k in value or "" in vs for k, vs in cand.items())


def check_arguments(call: ToolCall, acceptable: dict, tool: dict | None, nested: bool) -> list[tuple[str, str]]:
    """``[(label, reason)]`` for one call's arguments against one gold call's acceptable values."""
    params = (tool or {}).get("parameters") or {}
    props = params.get("properties") or {}
    required = params.get("required") or []
    args = call.arguments
    errors = []
    for p in required:
        if p not in args:
            errors.append(("missing_required_arg", f"{call.name}: required argument {p!r} is missing"))
    for p, values in acceptable.items():
        if p not in args and p not in required and "" not in values:
            errors.append(("missing_required_arg", f"{call.name}: argument {p!r} is needed here but missing"))
    for p, v in args.items():
        if p not in acceptable or (props and p not in props and params.get("additionalProperties") is not True):
            errors.append(("unexpected_arg", f"{call.name}: unexpected argument {p!r}"))
            continue
        candidates = acceptable[p]
        types = _schema_types(props.get(p, {}))
        if not _type_ok(v, types):
            typed = [c for c in candidates if not (isinstance(c, str) and c == "")]
            variable = typed and type(v) is type(typed[0])  # BFCL: a value of the gold's own type
            if not variable:
                errors.append(("arg_type_error", f"{call.name}: {p!r} should be {'/'.join(types or [])}, got {type(v).__name__}"))
                continue
        if not _value_matches(v, candidates, nested):
            shown = [c for c in candidates if c != ""][:3]
            errors.append(("arg_value_error", f"{call.name}: {p!r} = {v!r}, expected one of {shown!r}"))
    return errors


def schema_errors(call: ToolCall, tool: dict | None) -> list[tuple[str, str]]:
    """``[(label, reason)]`` for a call against its tool's JSON schema (unknown tool included)."""
    if tool is None:
        return [("hallucinated_tool", f"{call.name!r} is not one of the tools")]
    params = tool.get("parameters") or {}
    out = []
    for path, message in argument_errors(params, call.arguments):
        out.append((_label_for_schema_message(message), f"{call.name}: {path or 'arguments'}: {message}"))
    props = params.get("properties")
    if isinstance(props, dict) and params.get("additionalProperties") is None:
        for p in call.arguments:
            if p not in props:
                out.append(("unexpected_arg", f"{call.name}: unexpected argument {p!r}"))
    return out


def _label_for_schema_message(message: str) -> str:
    if "is a required property" in message:
        return "missing_required_arg"
    if "Additional properties are not allowed" in message or "Unevaluated properties" in message:
        return "unexpected_arg"
    if "is not of type" in message or "is not valid under any of the given schemas" in message:
        return "arg_type_error"
    return "arg_value_error"


# ---------------------------------------------------------------------------------------------
# Grounding and answer correctness

_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]+")
STOPWORDS = frozenset(
    """the and for are was were with that this from your you have has had not but can will would could
    should there their they them then than what when where which who whom how why all any some each
    our out into about over under again further once here also just only very too more most other such
    own same both few may might must shall let its it's i'm i've i'll you're we're it is be been being
    does did doing done get got make made please thank thanks sure okay yes here's there's that's
    currently right now today tool tools result results function call called using use used""".split()
)


def _number_token(s: str) -> str:
    s = s.replace(",", "")
    try:
        f = float(s)
    except ValueError:
        return s
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


def content_tokens(text: str) -> set[str]:
    """Numbers (normalised: ``1,200.0`` -> ``1200``) and lowercased content words of ``text``."""
    tokens = {_number_token(m.group(0)) for m in _NUMBER_RE.finditer(text)}
    tokens |= {w.lower().strip("'-") for w in _WORD_RE.findall(text) if len(w) >= 3 and w.lower() not in STOPWORDS}
    tokens.discard("")
    return tokens


def _result_tokens(text: str) -> set[str]:
    """Tokens of a tool result: of its values only when it is JSON (keys are not facts)."""
    try:
        value = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return content_tokens(text)
    out: set[str] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, (int, float)):
            out.add(_number_token(repr(v)))
        else:
            out |= content_tokens(str(v))
    return out


def key_values(ref: Reference) -> set[str]:
    """The result values a good answer repeats (see the module notes)."""
    result_tokens: set[str] = set()
    for r in ref.tool_results:
        result_tokens |= _result_tokens(r.get("text", ""))
    result_tokens -= content_tokens(ref.user_text)
    if ref.answer:
        used = result_tokens & content_tokens(ref.answer)
        return used
    return result_tokens


def is_grounded(answer: str, ref: Reference) -> bool | None:
    """Whether ``answer`` uses the tool results; ``None`` where there is nothing to ground on."""
    if not ref.tool_results:
        return None
    keys = key_values(ref)
    failed = [r for r in ref.tool_results if r.get("recent") and not r.get("ok", True)]
    if not keys and not failed:
        return None
    if keys & content_tokens(answer):
        return True
    return bool(failed) and bool(_FAILURE_RE.search(answer))


def answer_matches(answer: str, ref: Reference) -> bool:
    """Whether ``answer`` agrees with the gold answer (see the module notes): it repeats every key
    value the gold answer takes from the tool results; or, where the gold reports a failed call,
    it reports the failure too; otherwise it has every number of the gold answer and at least
    60 % of its content words."""
    got = content_tokens(answer)
    keys = key_values(ref) if ref.tool_results else set()
    if keys:
        return keys <= got
    failed = any(r.get("recent") and not r.get("ok", True) for r in ref.tool_results)
    if failed and _FAILURE_RE.search(ref.answer):
        return bool(_FAILURE_RE.search(answer))
    gold_tokens = content_tokens(ref.answer)
    if not gold_tokens:
        return bool(answer.strip()) or not ref.answer.strip()
    numbers = {t for t in gold_tokens if _NUMBER_RE.fullmatch(t)}
    if not numbers <= got:
        return False
    words = gold_tokens - numbers
    return not words or len(words & got) / len(words) >= 0.6


# ---------------------------------------------------------------------------------------------
# Scoring one output


@dataclass
class ItemScore:
    """One output's score. ``metrics`` maps each of :data:`METRICS` to True / False / None (does not
    apply). ``labels``: the annotators' error labels for what went wrong; ``reasons``: why, in words."""

    item_id: str
    case_types: list[str]
    decision: str
    gold_decision: str
    metrics: dict[str, bool | None]
    n_calls: int = 0
    n_redundant: int = 0
    labels: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return bool(self.metrics.get("correct"))

    @property
    def case_type(self) -> str:
        return self.case_types[0] if self.case_types else ""

    def to_dict(self) -> dict:
        return {
            "item_id": self.item_id,
            "case_types": list(self.case_types),
            "decision": self.decision,
            "gold_decision": self.gold_decision,
            "metrics": dict(self.metrics),
            "n_calls": self.n_calls,
            "n_redundant": self.n_redundant,
            "labels": list(self.labels),
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ItemScore":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def score_output(parsed: ParsedOutput, ref: Reference) -> ItemScore:
    """Score one parsed output against its reference."""
    labels: list[tuple[str, str]] = []
    m: dict[str, bool | None] = {k: None for k in METRICS}
    decision = decision_of(parsed, ref)
    calls = parsed.tool_calls

    m["format_ok"] = parsed.format_ok
    for e in parsed.format_errors:
        labels.append(("format_error", e))

    # Repeats: a call identical to an earlier one in this output or in the prompt.
    seen = {call_key(c) for c in ref.context_calls}
    unique: list[ToolCall] = []
    n_redundant = 0
    for c in calls:
        k = call_key(c)
        if k in seen:
            n_redundant += 1
            labels.append(("redundant_call", f"{c.name}: repeats a call whose result is known or already asked"))
            continue
        seen.add(k)
        unique.append(c)

    if calls:
        bad = [e for c in calls for e in schema_errors(c, ref.tool(c.name))]
        m["schema_ok"] = not bad
        labels.extend(bad)

    if ref.decision == "call":
        _score_calls(unique, ref, m, labels)
        if decision == "ask":
            labels.append(("unnecessary_clarification", "asked although the call could be made"))
        elif decision != "call":
            labels.append(("missed_tool_call", "answered without the tool call that was needed"))
    else:
        m["no_tool_ok"] = decision != "call"
        if decision == "call":
            if ref.decision == "ask":
                labels.append(("missing_clarification", "called instead of asking for the missing argument"))
            else:
                labels.append(("unnecessary_tool_call", "called a tool where none should be called"))
        if ref.decision == "ask":
            m["clarification_ok"] = decision == "ask" and (
                not ref.missing_args or any(_mentions_arg(parsed.answer, a) for a in ref.missing_args)
            )
            if decision in ("answer", "decline"):
                labels.append(("missing_clarification", "did not ask for the missing information"))
            elif decision == "ask" and not m["clarification_ok"]:
                labels.append(("missing_clarification", "asked, but not for the missing argument"))
        elif ref.decision == "decline":
            ok = ("decline", "answer") if ref.lenient_decline else ("decline",)
            m["decline_ok"] = decision in ok
            if decision == "answer" and not ref.lenient_decline:
                labels.append(("ungrounded_answer", "answered although the tools cannot do this"))
            elif decision == "ask":
                labels.append(("unnecessary_clarification", "asked instead of saying the tools cannot help"))
        elif ref.decision == "answer":
            if decision == "ask":
                labels.append(("unnecessary_clarification", "asked although everything needed was given"))
            elif decision == "decline":
                labels.append(("goal_partially_completed", "declined although it could answer"))
            grounded = is_grounded(parsed.answer, ref)
            if grounded is not None:
                m["grounded"] = decision == "answer" and grounded
                if decision == "answer" and not grounded:
                    labels.append(("ungrounded_answer", "the answer does not use the tool results"))
            if ref.answer:
                m["answer_ok"] = decision == "answer" and answer_matches(parsed.answer, ref)
                if decision == "answer" and not m["answer_ok"] and m["grounded"] is not False:
                    labels.append(("goal_partially_completed", "the answer misses facts of the gold answer"))

    m["decision_ok"] = decision == ref.decision or (
        ref.lenient_decline and ref.decision == "decline" and decision == "answer"
    )
    m["correct"] = (
        all(v is not False for k, v in m.items() if k != "correct") and n_redundant == 0
    )
    ordered = _ordered_labels(labels)
    return ItemScore(
        item_id=ref.item_id,
        case_types=list(ref.case_types),
        decision=decision,
        gold_decision=ref.decision,
        metrics=m,
        n_calls=len(calls),
        n_redundant=n_redundant,
        labels=ordered,
        reasons=list(dict.fromkeys(r for _, r in labels)),
    )


def _score_calls(unique: list[ToolCall], ref: Reference, m: dict, labels: list) -> None:
    """Match the distinct calls to the gold calls in any order, as BFCL does for parallel calls."""
    nested = ref.acceptable is not None
    gold = _acceptable_calls(ref)
    gold_names = [name for name, _ in gold]
    m["tool_selection_ok"] = {c.name for c in unique} == set(gold_names)  # which tools; how many is call_count_ok
    m["call_count_ok"] = len(unique) == len(gold)

    free = list(range(len(unique)))
    unmatched_gold = []
    for name, acceptable in gold:
        hit = next(
            (i for i in free if unique[i].name == name and not check_arguments(unique[i], acceptable, ref.tool(name), nested)),
            None,
        )
        if hit is None:
            unmatched_gold.append((name, acceptable))
        else:
            free.remove(hit)

    # Say why the rest did not match: pair each unmatched gold call with a call of the same tool.
    paired_errors = False
    lonely_gold = []
    for name, acceptable in unmatched_gold:
        partner = next((i for i in free if unique[i].name == name), None)
        if partner is None:
            lonely_gold.append(name)
            continue
        free.remove(partner)
        errors = check_arguments(unique[partner], acceptable, ref.tool(name), nested)
        labels.extend(errors)
        paired_errors = True
    wrong = False
    for i in free:
        c = unique[i]
        if ref.tool(c.name) is None:
            wrong = True  # hallucinated_tool is labelled by the schema check
        elif c.name not in gold_names:
            wrong = True
            labels.append(("wrong_tool", f"called {c.name!r} instead of {', '.join(sorted(set(gold_names)))}"))
        else:
            labels.append(("wrong_call_count", f"an extra call to {c.name!r}"))
    if lonely_gold and not wrong and unique:
        labels.append(("wrong_call_count", f"no call to {', '.join(lonely_gold)}"))

    name_pairs = len(gold) - len(lonely_gold)
    m["args_ok"] = (not paired_errors) if name_pairs else None
    m["calls_ok"] = not unmatched_gold and not free and len(unique) == len(gold)


def _acceptable_calls(ref: Reference) -> list[tuple[str, dict]]:
    if ref.acceptable is not None:
        return [(name, args) for gt in ref.acceptable for name, args in gt.items()]
    out = []
    for c in ref.calls:
        tool = ref.tool(c["name"]) or {}
        props = (tool.get("parameters") or {}).get("properties") or {}
        acceptable: dict[str, list] = {k: [v] for k, v in (c.get("arguments") or {}).items()}
        for p, spec in props.items():
            if p not in acceptable:
                # Not in the gold: may be left out, or given as its default.
                acceptable[p] = ["", spec["default"]] if isinstance(spec, dict) and "default" in spec else [""]
        out.append((c["name"], acceptable))
    return out


def _ordered_labels(labels: list[tuple[str, str]]) -> list[str]:
    found = {code for code, _ in labels}
    ordered = [code for code in LABEL_ORDER if code in found]
    return ordered + sorted(found - set(ordered))


def score_many(outputs: Iterable[ParsedOutput], refs: Iterable[Reference]) -> list[ItemScore]:
    return [score_output(p, r) for p, r in zip(outputs, refs, strict=True)]


# ---------------------------------------------------------------------------------------------
# Aggregation


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (``(0, 1)`` when ``n`` is 0).

    >>> tuple(round(x, 3) for x in wilson_interval(8, 10))
    (0.49, 0.943)
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k <= 0 else max(0.0, centre - half)
    high = 1.0 if k >= n else min(1.0, centre + half)
    return low, high


def rate(k: int, n: int) -> dict:
    low, high = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": (k / n) if n else None, "low": low, "high": high}


def mean_interval(values: list[float], z: float = Z95) -> dict:
    """Mean with a normal-approximation 95 % interval."""
    n = len(values)
    if not n:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "low": mean, "high": mean}
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}


def aggregate(scores: list[ItemScore]) -> dict:
    """The metrics table of a run: each metric's rate over the items where it applies (with a
    Wilson interval), and the mean number of calls and of redundant calls."""
    metrics = {}
    for name in METRICS:
        applicable = [s.metrics.get(name) for s in scores if s.metrics.get(name) is not None]
        metrics[name] = rate(sum(1 for v in applicable if v), len(applicable))
    return {
        "n": len(scores),
        "metrics": metrics,
        "counts": {c: mean_interval([float(getattr(s, c)) for s in scores]) for c in COUNTS},
    }


def breakdown(scores: list[ItemScore], by: str = "case_type") -> dict[str, dict]:
    """:func:`aggregate` per case type (an item counts under each of its case types), per
    ``decision`` or per ``gold_decision``."""
    groups: dict[str, list[ItemScore]] = defaultdict(list)
    for s in scores:
        if by == "case_type":
            for c in s.case_types or [""]:
                groups[c].append(s)
        else:
            groups[getattr(s, by)].append(s)
    order = {c: i for i, c in enumerate(CASE_TYPES + DECISIONS)}
    return {k: aggregate(groups[k]) for k in sorted(groups, key=lambda k: (order.get(k, 99), k))}


def label_table(scores: list[ItemScore]) -> dict[str, dict]:
    """For each error label that occurs: how many items carry it, as a rate of all items."""
    counts = Counter(label for s in scores for label in s.labels)
    n = len(scores)
    order = {c: i for i, c in enumerate(LABEL_ORDER)}
    return {label: rate(counts[label], n) for label in sorted(counts, key=lambda c: (order.get(c, 99), c))}


def confusion(scores: list[ItemScore]) -> dict[str, dict[str, int]]:
    """Counts of the decision taken (columns) against the gold decision (rows)."""
    table = {g: {d: 0 for d in DECISIONS} for g in DECISIONS}
    for s in scores:
        table.setdefault(s.gold_decision, {d: 0 for d in DECISIONS})
        table[s.gold_decision][s.decision] = table[s.gold_decision].get(s.decision, 0) + 1
    return table


def compare_runs(runs: dict[str, list[ItemScore]]) -> dict[str, dict[str, dict]]:
    """``{metric: {run_name: rate}}`` for runs side by side (base vs SFT vs DPO)."""
    tables = {name: aggregate(scores) for name, scores in runs.items()}
    return {metric: {name: t["metrics"][metric] for name, t in tables.items()} for metric in METRICS}
