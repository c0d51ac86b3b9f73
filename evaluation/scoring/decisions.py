"""Decisions: call / answer / ask / decline, and what each (gold, predicted) pair earns (pure; no Django).

:func:`decision_of` reads the decision an output took (heuristics in the package notes);
:data:`DECISION_TABLE` maps (gold decision, predicted decision) to a rule that returns an
:class:`Outcome`: the decision metrics it settles and the error labels it earns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from evaluation.parse import ParsedOutput
from evaluation.scoring.answers import answer_matches, is_grounded

if TYPE_CHECKING:  # (references imports this module: the type only, to avoid a cycle)
    from evaluation.scoring.references import Reference

DECISIONS = ("call", "answer", "ask", "decline")

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
# What a decision earns: (gold decision, predicted decision) -> outcome


@dataclass(frozen=True)
class Outcome:
    """Metric values settled by one part of the scoring, and ``(label, reason)`` pairs for what went wrong."""

    metrics: dict[str, bool | None] = field(default_factory=dict)
    labels: tuple[tuple[str, str], ...] = ()


Rule = Callable[[ParsedOutput, "Reference", str], Outcome]


def _fixed(metrics: dict | None = None, *labels: tuple[str, str]) -> Rule:
    outcome = Outcome(dict(metrics or {}), labels)
    return lambda parsed, ref, decision: outcome


def _asked(parsed: ParsedOutput, ref: Reference, decision: str) -> Outcome:
    ok = not ref.missing_args or any(_mentions_arg(parsed.answer, a) for a in ref.missing_args)
    labels = () if ok else (("missing_clarification", "asked, but not for the missing argument"),)
    return Outcome({"no_tool_ok": True, "clarification_ok": ok}, labels)


def _answered_instead_of_declining(parsed: ParsedOutput, ref: Reference, decision: str) -> Outcome:
    if ref.lenient_decline:
        return Outcome({"no_tool_ok": True, "decline_ok": True})
    return Outcome({"no_tool_ok": True, "decline_ok": False},
                   (("ungrounded_answer", "answered although the tools cannot do this"),))


def _answer_facts(first: tuple[tuple[str, str], ...] = (), **metrics: bool) -> Rule:
    """Gold answers: ``grounded`` and ``answer_ok`` where they apply (False unless the output answered)."""

    def rule(parsed: ParsedOutput, ref: Reference, decision: str) -> Outcome:
        m: dict[str, bool | None] = dict(metrics)
        labels = list(first)
        answered = decision == "answer"
        grounded = is_grounded(parsed.answer, ref)
        if grounded is not None:
            m["grounded"] = answered and grounded
            if answered and not grounded:
                labels.append(("ungrounded_answer", "the answer does not use the tool results"))
        if ref.answer:
            m["answer_ok"] = answered and answer_matches(parsed.answer, ref)
            if answered and not m["answer_ok"] and m.get("grounded") is not False:
                labels.append(("goal_partially_completed", "the answer misses facts of the gold answer"))
        return Outcome(m, tuple(labels))

    return rule


_MISSED_CALL = ("missed_tool_call", "answered without the tool call that was needed")
_CALLED_NOT_ASKED = ("missing_clarification", "called instead of asking for the missing argument")
_DID_NOT_ASK = ("missing_clarification", "did not ask for the missing information")
_UNNEEDED_CALL = ("unnecessary_tool_call", "called a tool where none should be called")

# Which calls were made (gold "call") is scored by the argument matcher; this table scores the decision.
DECISION_TABLE: dict[tuple[str, str], Rule] = {
    ("call", "call"): _fixed(),
    ("call", "ask"): _fixed({}, ("unnecessary_clarification", "asked although the call could be made")),
    ("call", "answer"): _fixed({}, _MISSED_CALL),
    ("call", "decline"): _fixed({}, _MISSED_CALL),
    ("ask", "call"): _fixed({"no_tool_ok": False, "clarification_ok": False}, _CALLED_NOT_ASKED),
    ("ask", "ask"): _asked,
    ("ask", "answer"): _fixed({"no_tool_ok": True, "clarification_ok": False}, _DID_NOT_ASK),
    ("ask", "decline"): _fixed({"no_tool_ok": True, "clarification_ok": False}, _DID_NOT_ASK),
    ("decline", "call"): _fixed({"no_tool_ok": False, "decline_ok": False}, _UNNEEDED_CALL),
    ("decline", "ask"): _fixed({"no_tool_ok": True, "decline_ok": False},
                               ("unnecessary_clarification", "asked instead of saying the tools cannot help")),
    ("decline", "answer"): _answered_instead_of_declining,
    ("decline", "decline"): _fixed({"no_tool_ok": True, "decline_ok": True}),
    ("answer", "call"): _answer_facts((_UNNEEDED_CALL,), no_tool_ok=False),
    ("answer", "ask"): _answer_facts(
        (("unnecessary_clarification", "asked although everything needed was given"),), no_tool_ok=True),
    ("answer", "answer"): _answer_facts(no_tool_ok=True),
    ("answer", "decline"): _answer_facts((("goal_partially_completed", "declined although it could answer"),),
                                         no_tool_ok=True),
}


def decision_outcome(parsed: ParsedOutput, ref: Reference, decision: str) -> Outcome:
    """The outcome of taking ``decision`` where the gold took ``ref.decision``, ``decision_ok`` included."""
    rule = DECISION_TABLE.get((ref.decision, decision)) or _fixed({"no_tool_ok": decision != "call"})
    outcome = rule(parsed, ref, decision)
    ok = decision == ref.decision or (ref.lenient_decline and ref.decision == "decline" and decision == "answer")
    return Outcome({**outcome.metrics, "decision_ok": ok}, outcome.labels)
