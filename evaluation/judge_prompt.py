"""(pure) A model as one more annotator: the judge's prompt, the reading of its reply, and its
agreement with the humans per label.

The judge sees one canonical trajectory with its steps numbered (turn N, step M, 1-based as the
editor shows them) and the project's label taxonomy, and answers with one JSON object::

    {"steps": [{"turn": 1, "step": 2, "labels": ["wrong_tool"], "note": "search, not lookup"}]}

``read_reply`` turns that into :class:`Proposal` rows and a list of problems (an unknown label, a
step that does not exist, a reply with no JSON): a problem is reported on the run, never dropped
silently. Proposals become suggestions (``annotate.suggestions``), never labels.

>>> from annotate.trajectory import Trajectory, Turn, Step
>>> doc = Trajectory(turns=[Turn(user="hi", steps=[Step(kind="answer", text="hello")])])
>>> props, problems = read_reply('{"steps": [{"turn": 1, "step": 1, "labels": ["ungrounded_answer"]}]}',
...                              doc, ["ungrounded_answer"])
>>> [(p.turn, p.step, p.label) for p in props], problems
([(0, 0, 'ungrounded_answer')], [])
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from annotate.agreement import figures
from annotate.trajectory import Step, Trajectory

INSTRUCTIONS = (
    "You review an AI assistant's tool-calling trajectory step by step and label its errors.\n"
    "Use only these error labels:\n{labels}\n\n"
    "Answer with one JSON object and nothing else:\n"
    '{{"steps": [{{"turn": <turn number>, "step": <step number>, "labels": [<labels>], "note": "<why>"}}]}}\n'
    "List only the steps that have an error; an empty list means no step has one."
)


@dataclass(frozen=True)
class Proposal:
    """One label the judge proposes for one step (0-based ``turn``/``step``), with its note."""

    turn: int
    step: int
    label: str
    note: str = ""

    def to_dict(self) -> dict:
        return {"turn": self.turn, "step": self.step, "label": self.label, "note": self.note}


def _step_line(si: int, step: Step) -> str:
    head = f"  step {si + 1} [{step.kind}]"
    if step.kind == "tool_call":
        return f"{head} {step.name}({json.dumps(step.arguments, ensure_ascii=False, sort_keys=True)})" + (
            f" id={step.call_id}" if step.call_id else "")
    if step.kind == "tool_result":
        return f"{head}{'' if step.ok else ' (error)'} {step.text}"
    return f"{head} {step.text}"


def judge_messages(doc: Trajectory, labels: list[str]) -> list[dict]:
    """The chat messages that ask the judge about ``doc`` (system: the instructions and taxonomy;
    user: the trajectory, numbered as the editor numbers it)."""
    lines = []
    if doc.system:
        lines.append(f"System prompt: {doc.system}")
    if doc.tools:
        names = [t.get("function", t).get("name", "?") for t in doc.tools if isinstance(t, dict)]
        lines.append("Tools available: " + ", ".join(names))
    for ti, turn in enumerate(doc.turns):
        lines.append(f"turn {ti + 1}: user: {turn.user}")
        lines.extend(_step_line(si, s) for si, s in enumerate(turn.steps))
    system = INSTRUCTIONS.format(labels="\n".join(f"- {label}" for label in labels))
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _json_object(text: str) -> Any:
    """The first JSON object in ``text`` (after any ``<think>`` block, inside a code fence or not)."""
    text = text.split("</think>")[-1]
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        for start in [i for i, ch in enumerate(chunk) if ch == "{"][:50]:
            try:
                value, _ = decoder.raw_decode(chunk[start:])
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError("the reply holds no JSON object")


def _index(value: Any, count: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a number, not {value!r}")
    if not 1 <= value <= count:
        raise ValueError(f"{what} {value} does not exist (1..{count})")
    return value - 1


def read_reply(text: str, doc: Trajectory, labels: list[str]) -> tuple[list[Proposal], list[str]]:
    """The judge's proposals for ``doc`` and the problems met reading ``text`` (each names where)."""
    try:
        obj = _json_object(text)
    except ValueError as exc:
        return [], [str(exc)]
    entries = obj.get("steps")
    if not isinstance(entries, list):
        return [], ['"steps" must be a list']
    proposals: list[Proposal] = []
    problems: list[str] = []
    allowed = set(labels)
    for n, entry in enumerate(entries, 1):
        where = f"steps[{n}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be an object")
            continue
        try:
            ti = _index(entry.get("turn"), len(doc.turns), "turn")
            si = _index(entry.get("step"), len(doc.turns[ti].steps), f"turn {ti + 1} step")
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        note = entry.get("note") if isinstance(entry.get("note"), str) else ""
        wanted = entry.get("labels")
        if isinstance(wanted, str):
            wanted = [wanted]
        if not isinstance(wanted, list):
            problems.append(f"{where}.labels: must be a list of labels")
            continue
        for label in dict.fromkeys(wanted):
            if label not in allowed:
                problems.append(f"{where}.labels: {label!r} is not one of the project's labels")
                continue
            proposals.append(Proposal(ti, si, label, note.strip()[:2000]))
    return proposals, problems


# --- judge vs humans -----------------------------------------------------------------------------

def judge_agreement(steps: list[tuple[set[str], set[str]]], labels: list[str]) -> list[dict]:
    """Per label, how the judge's calls agree with the humans' on the same steps.

    ``steps``: one ``(judge's labels, humans' labels)`` pair per judged step. For each label:
    the steps either side used it on, both, observed agreement, Cohen's κ and Krippendorff's α
    (None: undefined), computed by the same machinery as the humans' agreement
    (``annotate.agreement.figures``).

    >>> rows = judge_agreement([({"wrong_tool"}, {"wrong_tool"}), (set(), set()), ({"wrong_tool"}, set())],
    ...                        ["wrong_tool", "format_error"])
    >>> [(r["label"], r["both"], r["judge"], r["human"], round(r["agreement"], 2)) for r in rows]
    [('wrong_tool', 1, 2, 1, 0.67), ('format_error', 0, 0, 0, 1.0)]
    """
    rows = []
    for label in labels:
        judge = [label in j for j, _ in steps]
        human = [label in h for _, h in steps]
        n = len(steps)
        rows.append({
            "label": label, "steps": n,
            "judge": sum(judge), "human": sum(human),
            "both": sum(x and y for x, y in zip(judge, human)),
            "agreement": (sum(x == y for x, y in zip(judge, human)) / n) if n else None,
            "kappa": figures.cohen_kappa([int(x) for x in judge], [int(y) for y in human]),
            "alpha": figures.alpha([[int(x) for x in judge], [int(y) for y in human]]),
        })
    return rows
