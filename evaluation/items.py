"""Evaluation items: what the model is asked, and what it should do (pure; no Django, nothing heavy).

An :class:`EvalItem` is one decision point: the prompt as chat ``messages`` + ``tools`` (OpenAI
function specs, the shapes TRL's datasets and chat templates read), the gold ``reference``
(:meth:`evaluation.scoring.Reference.to_dict`), and for replay the rest of the gold turn:
``replay`` holds the gold calls made later in the turn with their results, ``final_reference``
the turn's final answer. An item whose model output calls a tool is continued by feeding it the
gold result of the matching call, until it answers or the step limit is hit
(:func:`evaluation.generate.generate_items`).

Three ways in, one item shape:

- :func:`items_from_prompt_rows`: the rows of a ``prompt`` snapshot split (``eval.jsonl``: ``id``,
  ``prompt``, ``tools``, ``reference`` JSON text, ``case_types``), one per decision point. The rows
  of one turn are consecutive decision points; the messages each adds to the one before are
  the gold calls and results that replay feeds back.
- :func:`rows_from_trajectory`: the same rows straight from a canonical trajectory (an imported
  benchmark whose ``meta.reference`` holds BFCL-style possible answers, or any curated one).
- :func:`rows_from_candidates`: a question with candidate answers and the correct one marked
  (the shape ``annotate.pairs`` imports): the correct candidate is the gold.

>>> from annotate.trajectory import Trajectory
>>> t = Trajectory.from_dict({"tools": [{"name": "get_weather", "parameters": {"type": "object",
...     "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
...     "turns": [{"user": "Weather in Paris?", "steps": [
...         {"kind": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}, "call_id": "c1"},
...         {"kind": "tool_result", "name": "get_weather", "text": "18C", "call_id": "c1"},
...         {"kind": "answer", "text": "It is 18C."}]}], "meta": {"external_id": "w"}})
>>> [i.id for i in items_from_prompt_rows(rows_from_trajectory(t, "w"))]
['w#t0s0', 'w#t0s2']
>>> first = items_from_prompt_rows(rows_from_trajectory(t, "w"))[0]
>>> first.replay, first.final_reference["decision"]
([{'name': 'get_weather', 'arguments': {'city': 'Paris'}, 'text': '18C'}], 'answer')
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from annotate.pairs import PairError, candidate_steps
from annotate.trajectory import CASE_TYPES, Step, Trajectory, normalize_tool, truncate_before
from evaluation.scoring import Reference, reference_output, references_from_trajectory
from training.chat_templates import get_template
from training.render import to_conversation

_ROW_ID_RE = re.compile(r"^(?P<ident>.*)#t(?P<turn>\d+)s(?P<step>\d+)$")
_SNAPSHOT_IDENT_RE = re.compile(r"^t(?P<trajectory>\d+)v\d+$")


@dataclass
class EvalItem:
    """One decision point to evaluate (see the module docstring)."""

    id: str
    messages: list[dict]
    tools: list[dict] = field(default_factory=list)
    reference: dict = field(default_factory=dict)
    case_types: list[str] = field(default_factory=list)
    replay: list[dict] = field(default_factory=list)
    final_reference: dict | None = None
    trajectory_id: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EvalItem":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def decision_point(row_id: str) -> tuple[str, int, int] | None:
    """``"t3v2#t1s4"`` -> ``("t3v2", 1, 4)``; None for an id not of that shape."""
    m = _ROW_ID_RE.match(row_id or "")
    if m is None:
        return None
    return m.group("ident"), int(m.group("turn")), int(m.group("step"))


def trajectory_id_of(row_id: str) -> int | None:
    """The database id of the trajectory a snapshot row came from (snapshot idents are ``t<id>v<version>``)."""
    point = decision_point(row_id)
    m = _SNAPSHOT_IDENT_RE.match(point[0]) if point else None
    return int(m.group("trajectory")) if m else None


def _reference_dict(value: Any) -> dict:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError("the reference must be a JSON object")
    return value


def items_from_prompt_rows(rows: Iterable[dict]) -> list[EvalItem]:
    """Items from prompt rows (a snapshot split's JSONL, or :func:`rows_from_trajectory`), in row order."""
    rows = list(rows)
    items = []
    groups: dict[tuple[str, int], list[int]] = {}
    for i, row in enumerate(rows):
        ref = _reference_dict(row.get("reference"))
        messages = row.get("prompt") or []
        if not isinstance(messages, list):
            raise ValueError(f"row {row.get('id')!r}: the prompt must be a list of messages")
        items.append(EvalItem(id=str(row.get("id") or f"item-{i}"), messages=messages,
                              tools=list(row.get("tools") or []), reference=ref, case_types=list(row.get("case_types") or ref.get("case_types") or []),
                              trajectory_id=trajectory_id_of(str(row.get("id") or ""))))
        point = decision_point(items[-1].id)
        if point is not None:
            groups.setdefault(point[:2], []).append(i)
    for members in groups.values():
        members.sort(key=lambda i: decision_point(items[i].id)[2])
        for k, i in enumerate(members):
            later = members[k + 1:]
            if not later or items[i].reference.get("decision") != "call":
                continue
            pool = []
            for before, after in zip(members[k:], later):
                pool.extend(gold_results(items[before].messages, items[after].messages))
            items[i].replay = pool
            last = items[later[-1]].reference
            items[i].final_reference = last if last.get("decision") != "call" else None
    return items


def gold_results(prompt: list[dict], longer: list[dict]) -> list[dict]:
    """The gold calls and their results that ``longer`` (a later decision's prompt) adds to ``prompt``:
    ``[{"name", "arguments", "text"}]``, each call paired with its tool message by call id, else in order."""
    added = longer[len(prompt):]
    calls = []
    for m in added:
        if m.get("role") == "assistant":
            for c in m.get("tool_calls") or []:
                fn = c.get("function", c)
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except ValueError:
                        args = {}
                calls.append({"id": c.get("id") or "", "name": fn.get("name", ""),
                              "arguments": args if isinstance(args, dict) else {}})
    out = []
    unused = list(calls)
    for m in added:
        if m.get("role") != "tool":
            continue
        call = next((c for c in unused if c["id"] and c["id"] == m.get("tool_call_id")), None)
        if call is None:
            call = next((c for c in unused if c["name"] == m.get("name")), unused[0] if unused else None)
        if call is None:
            continue
        unused.remove(call)
        content = m.get("content")
        out.append({"name": call["name"], "arguments": call["arguments"],
                    "text": content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)})
    return out


def rows_from_trajectory(traj: Trajectory, ident: str, template: Any = None) -> list[dict]:
    """Prompt rows for every gold decision point of ``traj`` (as a ``prompt`` snapshot has them).

    ``template``: the ``training.chat_templates.ChatTemplate`` whose message shapes to use
    (default: TRL's qwen3, whose shapes are the OpenAI / TRL ones).
    """
    template = template or get_template("qwen3")
    tools = to_conversation(Trajectory(tools=traj.tools), template).tools
    rows = []
    for ref in references_from_trajectory(traj):
        ti, si = ref.turn_index, ref.step_index
        if ti is None or si is None:
            continue
        row_id = f"{ident}#t{ti}s{si}"
        ref.item_id = row_id
        rows.append({"id": row_id, "prompt": to_conversation(truncate_before(traj, ti, si), template).messages,
                     "tools": tools, "reference": json.dumps(ref.to_dict(), ensure_ascii=False, sort_keys=True),
                     "case_types": list(ref.case_types)})
    return rows


# The case type a correct candidate of each type tests.
CANDIDATE_CASE_TYPES = {"tool_call": "tool_required", "direct": "no_tool", "clarify": "clarification",
                        "refusal": "tool_unavailable"}


def rows_from_candidates(record: dict, ident: str, template: Any = None) -> list[dict]:
    """Prompt rows for one question with candidates and the correct one marked (``annotate.pairs``'
    import shape): the correct candidate is the gold continuation. Raises ``ValueError`` (a
    ``PairError`` naming the field) for a malformed record."""
    if not isinstance(record, dict):
        raise PairError("a record must be an object")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise PairError("must be a non-empty string (the user message the candidates answer)", "question")
    cands = record.get("candidates")
    if not isinstance(cands, list) or not cands:
        raise PairError("must be a non-empty list of candidates", "candidates")
    correct = record.get("correct")
    ids = [str(c.get("id")) if isinstance(c, dict) and c.get("id") is not None else None for c in cands]
    if isinstance(correct, int) and not isinstance(correct, bool) and 0 <= correct < len(cands):
        ci = correct
    elif correct is not None and str(correct) in ids:
        ci = ids.index(str(correct))
    else:
        raise PairError("must name the correct candidate (its id, or its 0-based index)", "correct")
    steps = candidate_steps(cands[ci], f"candidates[{ci}]")
    kind = cands[ci].get("type") or ("tool_call" if any(s.kind == "tool_call" for s in steps) else "direct")
    case_type = CANDIDATE_CASE_TYPES.get(kind, "tool_required")
    if record.get("category") == "irrelevant_tools":
        case_type = "irrelevant_tools"
    extra = {}
    if case_type == "clarification":
        extra["missing_args"] = _missing_args(record, cands, ci, question)
    traj = Trajectory.from_dict({
        "system": record.get("system") or "", "tools": record.get("tools") or [],
        "turns": list(record.get("history") or []) + [{"user": question, "steps": [s.to_dict() for s in steps]}],
        "meta": {"source": "candidates", "external_id": ident, "case_types": [case_type], "extra": extra},
    })
    ti = len(traj.turns) - 1
    rows = [r for r in rows_from_trajectory(traj, ident, template) if decision_point(r["id"])[1] == ti]
    return rows[:1]  # the first decision: what the question asks of the model


def _missing_args(record: dict, cands: list, correct: int, question: str) -> list[str]:
    """What a correct clarifying question asks for: the required arguments of a wrong candidate's
    call (the call made too early) whose values the user has not given."""
    tools = {}
    for t in record.get("tools") or []:
        try:
            spec = normalize_tool(t)
        except ValueError:
            continue
        tools[spec["name"]] = spec
    said = question.lower()
    for i, c in enumerate(cands):
        if i == correct:
            continue
        try:
            steps = candidate_steps(c, f"candidates[{i}]")
        except PairError:
            continue
        for s in steps:
            if s.kind == "tool_call" and isinstance(s.arguments, dict):
                params = (tools.get(s.name) or {}).get("parameters") or {}
                required = params.get("required") or list(s.arguments)
                return [a for a in required if a in s.arguments and str(s.arguments[a]).lower() not in said]
    return []


def case_types_of(items: Iterable[EvalItem]) -> dict[str, int]:
    """How many items test each case type (in the canonical order)."""
    counts = {c: 0 for c in CASE_TYPES}
    for it in items:
        for c in it.case_types:
            counts[c] = counts.get(c, 0) + 1
    return {c: n for c, n in counts.items() if n}


def steps_from_output(parsed: dict, *, call_prefix: str = "eval") -> list[Step]:
    """A parsed output (``evaluation.parse.ParsedOutput.to_dict()``) as canonical steps: its reasoning,
    its answer text, its calls. An unreadable output keeps its raw text as the answer, so the
    annotator sees what the model wrote."""
    out = []
    if parsed.get("reasoning"):
        out.append(Step(kind="think", text=parsed["reasoning"]))
    calls = parsed.get("tool_calls") or []
    answer = parsed.get("answer") or ""
    if parsed.get("format_errors") and not calls:
        answer = answer or parsed.get("raw") or ""
    if answer:
        out.append(Step(kind="answer", text=answer))
    for k, c in enumerate(calls):
        out.append(Step(kind="tool_call", name=c.get("name", ""), arguments=c.get("arguments") or {},
                        call_id=f"{call_prefix}_{k + 1}"))
    if not out:
        out.append(Step(kind="answer", text=parsed.get("raw") or ""))
    return out


def steps_from_reference(ref: dict, *, call_prefix: str = "gold") -> list[Step]:
    """The gold continuation of a reference as canonical steps: its calls, or its answer (a
    standard question or refusal where the reference has no text)."""
    r = Reference.from_dict(ref)
    if r.decision == "call":
        return [Step(kind="tool_call", name=c["name"], arguments=c.get("arguments") or {},
                     call_id=f"{call_prefix}_{k + 1}") for k, c in enumerate(r.calls)]
    return [Step(kind="answer", text=reference_output(r))]
