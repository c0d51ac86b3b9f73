"""When2Call's metrics (NVIDIA/When2Call, "When2Call: When (not) to Call Tools"), on items imported
from When2Call (pure; no Django).

When2Call scores a four-way decision: ``direct`` (answer from what the model knows), ``tool_call``,
``request_for_info`` (ask for a missing parameter) and ``cannot_answer`` (say the tools cannot do
it). Ours are the same four (:data:`DECISION_OF`). As its paper and scripts report them:

- the **confusion table**, gold category (rows) against the category of the output (columns);
- **macro-F1**: the mean over the categories of each one's F1 (``2TP / (2TP + FP + FN)``), over the
  categories present in the gold or the outputs, a category with no true positive counting 0
  (scikit-learn's ``f1_score(average="macro", zero_division=0)``);
- the **tool-hallucination rate**: of the ``cannot_answer`` items that offer no tool at all, the
  share where the model called a tool anyway;
- accuracy, the share of items whose category is the gold's.

>>> s = [Scored("tool_call", "tool_call", 1), Scored("cannot_answer", "tool_call", 0),
...      Scored("cannot_answer", "cannot_answer", 0), Scored("direct", "direct", 0)]
>>> t = when2call_metrics(s)
>>> round(t["macro_f1"], 3), t["tool_hallucination"]["k"], t["tool_hallucination"]["n"]
(0.778, 1, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from evaluation.scoring.intervals import rate

CATEGORIES = ("direct", "tool_call", "request_for_info", "cannot_answer")
# When2Call's category -> our decision, and back.
DECISION_OF = {"direct": "answer", "tool_call": "call", "request_for_info": "ask", "cannot_answer": "decline"}
CATEGORY_OF = {d: c for c, d in DECISION_OF.items()}
SOURCE = "when2call"


@dataclass(frozen=True)
class Scored:
    """One item as When2Call sees it: the gold category, the output's, and how many tools were offered."""

    gold: str
    predicted: str
    n_tools: int


def scored_items(scores: Iterable) -> list[Scored]:
    """The When2Call items among :class:`~evaluation.scoring.score.ItemScore` objects."""
    return [Scored(CATEGORY_OF.get(s.gold_decision, s.gold_decision), CATEGORY_OF.get(s.decision, s.decision), s.n_tools or 0)
            for s in scores if s.source == SOURCE]


def f1_per_category(items: list[Scored]) -> dict[str, float]:
    out = {}
    for c in CATEGORIES:
        tp = sum(1 for s in items if s.gold == c and s.predicted == c)
        fp = sum(1 for s in items if s.gold != c and s.predicted == c)
        fn = sum(1 for s in items if s.gold == c and s.predicted != c)
        if tp + fp + fn:
            out[c] = 2 * tp / (2 * tp + fp + fn)
    return out


def when2call_metrics(items: list[Scored]) -> dict | None:
    """The table for a run (``None`` where no item came from When2Call)."""
    if not items:
        return None
    confusion = {g: {p: 0 for p in CATEGORIES} for g in CATEGORIES}
    for s in items:
        confusion.setdefault(s.gold, {p: 0 for p in CATEGORIES})
        confusion[s.gold][s.predicted] = confusion[s.gold].get(s.predicted, 0) + 1
    f1 = f1_per_category(items)
    no_tools = [s for s in items if s.gold == "cannot_answer" and s.n_tools == 0]
    return {
        "n": len(items),
        "categories": list(CATEGORIES),
        "confusion": confusion,
        "f1": f1,
        "macro_f1": sum(f1.values()) / len(f1) if f1 else None,
        "accuracy": rate(sum(1 for s in items if s.gold == s.predicted), len(items)),
        "tool_hallucination": rate(sum(1 for s in no_tools if s.predicted == "tool_call"), len(no_tools)),
    }


def when2call_table(scores: Iterable) -> dict | None:
    """:func:`when2call_metrics` over the When2Call items of a run's scores."""
    return when2call_metrics(scored_items(scores))
