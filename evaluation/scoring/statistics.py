"""Many scores into the dashboard's tables: rates with 95 % Wilson intervals, breakdowns, label
counts, the decision confusion table, runs side by side (pure; no Django)."""

from __future__ import annotations

from collections import Counter, defaultdict

from annotate.trajectory import CASE_TYPES
from evaluation.scoring.decisions import DECISIONS
from evaluation.scoring.intervals import mean_interval, rate
from evaluation.scoring.score import COUNTS, LABEL_ORDER, METRICS, ItemScore

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
