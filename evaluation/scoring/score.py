"""Scoring one output against its reference: :func:`score_output` -> :class:`ItemScore` (pure; no Django)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from annotate.trajectory import DEFAULT_ERROR_LABELS
from evaluation import bfcl_package
from evaluation.parse import ParsedOutput, ToolCall
from evaluation.scoring.arguments import call_key, match_calls, schema_errors
from evaluation.scoring.decisions import Outcome, decision_of, decision_outcome
from evaluation.scoring.references import Reference

# Our scorer's version, recorded on each evaluation run: raise it whenever a verdict can change.
# 2: "correct" on BFCL items is BFCL's AST checker's verdict; repeats compare strings as written.
SCORER_VERSION = "2"

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
    "correct",  # every applicable metric passed and no redundant call; BFCL items: BFCL's AST verdict
)
COUNTS = ("n_calls", "n_redundant")

LABEL_ORDER = [code for code, _ in DEFAULT_ERROR_LABELS]


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
    source: str = ""  # the benchmark the item came from (Reference.source)
    n_tools: int | None = None  # tools offered (When2Call's tool-hallucination rate counts those offering none)

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
            "source": self.source,
            "n_tools": self.n_tools,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ItemScore":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def score_output(parsed: ParsedOutput, ref: Reference) -> ItemScore:
    """Score one parsed output against its reference: each part returns an :class:`Outcome`
    (format, repeats, schema, the calls against the gold, the decision), merged in that order."""
    decision = decision_of(parsed, ref)
    calls = parsed.tool_calls
    unique, repeats = split_repeats(calls, ref)
    parts = [
        Outcome({"format_ok": parsed.format_ok}, tuple(("format_error", e) for e in parsed.format_errors)),
        repeats,
        _schema_outcome(calls, ref),
        match_calls(unique, ref) if ref.decision == "call" else Outcome(),
        decision_outcome(parsed, ref, decision),
    ]
    m: dict[str, bool | None] = {k: None for k in METRICS}
    labels: list[tuple[str, str]] = []
    for part in parts:
        m.update(part.metrics)
        labels.extend(part.labels)
    n_redundant = len(calls) - len(unique)
    if ref.source == "bfcl":
        m["correct"] = bfcl_correct(parsed, ref, parts[3] if unique == calls else None)
    else:
        m["correct"] = all(v is not False for k, v in m.items() if k != "correct") and n_redundant == 0
    return ItemScore(
        item_id=ref.item_id,
        case_types=list(ref.case_types),
        decision=decision,
        gold_decision=ref.decision,
        metrics=m,
        n_calls=len(calls),
        n_redundant=n_redundant,
        labels=_ordered_labels(labels),
        reasons=list(dict.fromkeys(r for _, r in labels)),
        source=ref.source,
        n_tools=len(ref.tools),
    )


def bfcl_correct(parsed: ParsedOutput, ref: Reference, matched: Outcome | None = None) -> bool:
    """BFCL's verdict, as its AST checker and runner give it: where no tool should be called, right
    when no call was read; else every call read (repeats included) matches a gold call, in any order,
    and none is left over. Our stricter checks (schema validity against the declared enum, repeats,
    the decision) stay in their own metrics and do not enter this verdict."""
    if ref.decision != "call":
        return not parsed.tool_calls
    if not parsed.format_ok:
        return False
    matched = matched if matched is not None else match_calls(parsed.tool_calls, ref)
    return bool(matched.metrics.get("calls_ok"))


def checker_versions(sources: Iterable[str]) -> dict[str, str]:
    """The checkers behind a run's verdicts: our scorer's version, and the ``bfcl-eval`` release whose
    AST checker decides "correct" where items came from BFCL (the agreement test holds it to that release).

    >>> checker_versions(["", "bfcl"])
    {'studio-scorer': '2', 'bfcl-eval': '2026.3.23'}
    """
    out = {"studio-scorer": SCORER_VERSION}
    if "bfcl" in set(sources):
        out["bfcl-eval"] = bfcl_package.VERSION
    return out


def split_repeats(calls: list[ToolCall], ref: Reference) -> tuple[list[ToolCall], Outcome]:
    """The distinct calls, and a ``redundant_call`` label for each call identical to an earlier one
    in this output or in the prompt, beyond as many times as the gold makes it (a gold may ask for
    the same call twice: two random draws with the same parameters)."""
    seen = {call_key(c) for c in ref.context_calls}
    asked = Counter(call_key(c) for c in ref.calls)
    unique: list[ToolCall] = []
    labels = []
    for c in calls:
        k = call_key(c)
        if asked[k] > 0:
            asked[k] -= 1
        elif k in seen:
            labels.append(("redundant_call", f"{c.name}: repeats a call whose result is known or already asked"))
            continue
        seen.add(k)
        unique.append(c)
    return unique, Outcome({}, tuple(labels))


def _schema_outcome(calls: list[ToolCall], ref: Reference) -> Outcome:
    if not calls:
        return Outcome()
    bad = [e for c in calls for e in schema_errors(c, ref.tool(c.name))]
    return Outcome({"schema_ok": not bad}, tuple(bad))


def _ordered_labels(labels: list[tuple[str, str]]) -> list[str]:
    found = {code for code, _ in labels}
    ordered = [code for code in LABEL_ORDER if code in found]
    return ordered + sorted(found - set(ordered))


def score_many(outputs: Iterable[ParsedOutput], refs: Iterable[Reference]) -> list[ItemScore]:
    return [score_output(p, r) for p, r in zip(outputs, refs, strict=True)]

