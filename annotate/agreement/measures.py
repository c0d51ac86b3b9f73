"""Agreement figures for step labels and edited arguments (pure; no Django).

Input is what N annotators produced for the same trajectories, step by step; output is, per error
label, Krippendorff's alpha (``krippendorff``, nominal, missing values allowed), Fleiss' kappa,
Cohen's kappa for each pair of annotators (scikit-learn), and bootstrap intervals; per call
argument field, the share of annotator pairs that agree exactly and after JSON normalisation.

A *unit* is one aligned step: ``{annotator: set of labels}``, with ``None`` where that annotator's
version lacks the step (a missing version, or a step they deleted). Steps are aligned by call id
where they have one, else by position (:func:`align_steps`).

>>> units = [{"ann": {"wrong_tool"}, "bob": {"wrong_tool"}}, {"ann": set(), "bob": set()},
...          {"ann": {"wrong_tool"}, "bob": set()}, {"ann": set(), "bob": set()}]
>>> r = label_agreement(units, ["wrong_tool"], draws=0)["wrong_tool"]
>>> round(r.alpha, 3), round(r.pairs[("ann", "bob")], 3), r.units, r.positives
(0.533, 0.5, 4, 3)

Undefined figures are ``None`` with the reason, never a made-up number:

>>> label_agreement(units, ["hallucinated_argument"], draws=0)["hallucinated_argument"].note
'never used by anyone: agreement is undefined'
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Iterable

import krippendorff
import numpy as np

Unit = dict[str, "set[str] | None"]


@dataclass
class LabelAgreement:
    """One label's figures over the units where at least two annotators have the step."""

    label: str
    units: int = 0  # units with two or more annotators present
    positives: int = 0  # (unit, annotator) cells that carry the label
    alpha: float | None = None
    alpha_interval: tuple[float, float] | None = None
    fleiss: float | None = None  # only over units every annotator has (Fleiss needs a full table)
    observed: float | None = None  # share of annotator pairs that agree, over the units
    pairs: dict[tuple[str, str], float | None] = field(default_factory=dict)  # Cohen's kappa
    note: str = ""


def annotators_of(units: Iterable[Unit]) -> list[str]:
    return sorted({a for u in units for a in u})


def _matrix(units: list[Unit], label: str, raters: list[str]) -> np.ndarray:
    """raters x units of 1 / 0 / nan (the reliability data ``krippendorff.alpha`` takes)."""
    data = np.full((len(raters), len(units)), np.nan)
    for j, unit in enumerate(units):
        for i, rater in enumerate(raters):
            labels = unit.get(rater)
            if labels is not None:
                data[i, j] = 1.0 if label in labels else 0.0
    return data


def _alpha(data: np.ndarray) -> float | None:
    present = data[~np.isnan(data)]
    if len(np.unique(present)) < 2:
        return None  # one value only: no variation, alpha is 0/0
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def fleiss_kappa(counts: list[list[int]]) -> float | None:
    """Fleiss' kappa of a subjects x categories table of rater counts (every row sums to n).

    Checked against Fleiss (1971)'s worked example as reproduced on Wikipedia (kappa = 0.210):

    >>> table = [[0,0,0,0,14],[0,2,6,4,2],[0,0,3,5,6],[0,3,9,2,0],[2,2,8,1,1],
    ...          [7,7,0,0,0],[3,2,6,3,0],[2,5,3,2,2],[6,5,2,1,0],[0,2,2,3,7]]
    >>> round(fleiss_kappa(table), 3)
    0.21
    """
    if not counts:
        return None
    n = sum(counts[0])
    if n < 2 or any(sum(row) != n for row in counts):
        return None
    subjects = len(counts)
    p_j = [sum(row[j] for row in counts) / (subjects * n) for j in range(len(counts[0]))]
    p_i = [(sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts]
    p_bar, p_e = sum(p_i) / subjects, sum(p * p for p in p_j)
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1 - p_e)


def _cohen(a: list[int], b: list[int]) -> float | None:
    # scikit-learn's metrics take ~2 s to import: loaded when a figure is asked for, not by the web
    # process at start-up.
    from sklearn.metrics import cohen_kappa_score

    if not a or (len(set(a)) == 1 and set(a) == set(b)):
        return None  # both constant and equal: kappa is 0/0
    return float(cohen_kappa_score(a, b, labels=[0, 1]))


def _observed(data: np.ndarray) -> float | None:
    agree = total = 0
    for j in range(data.shape[1]):
        col = [v for v in data[:, j] if not np.isnan(v)]
        for x, y in combinations(col, 2):
            total += 1
            agree += x == y
    return agree / total if total else None


def label_agreement(units: list[Unit], labels: Iterable[str], *, draws: int = 1000, seed: int = 0,
                    level: float = 0.95) -> dict[str, LabelAgreement]:
    """Per label: alpha (+ a percentile bootstrap interval over units), Fleiss, Cohen per pair."""
    raters = annotators_of(units)
    usable = [u for u in units if sum(v is not None for v in u.values()) >= 2]
    out: dict[str, LabelAgreement] = {}
    for label in labels:
        r = out[label] = LabelAgreement(label=label, units=len(usable))
        if len(raters) < 2 or not usable:
            r.note = "needs two annotators on the same steps"
            continue
        data = _matrix(usable, label, raters)
        r.positives = int(np.nansum(data))
        r.observed = _observed(data)
        r.alpha = _alpha(data)
        if r.alpha is None:
            r.note = ("never used by anyone: agreement is undefined" if r.positives == 0
                      else "used on every step by everyone: agreement is undefined")
        elif draws:
            r.alpha_interval = _bootstrap(data, draws, seed, level)
        full = [j for j in range(data.shape[1]) if not np.isnan(data[:, j]).any()]
        if full:
            r.fleiss = fleiss_kappa([[int((data[:, j] == 0).sum()), int((data[:, j] == 1).sum())] for j in full])
        for x, y in combinations(range(len(raters)), 2):
            both = [j for j in range(data.shape[1]) if not (np.isnan(data[x, j]) or np.isnan(data[y, j]))]
            r.pairs[(raters[x], raters[y])] = _cohen([int(data[x, j]) for j in both],
                                                     [int(data[y, j]) for j in both]) if both else None
    return out


def _bootstrap(data: np.ndarray, draws: int, seed: int, level: float) -> tuple[float, float] | None:
    rng = random.Random(seed)
    n = data.shape[1]
    values = []
    for _ in range(draws):
        a = _alpha(data[:, [rng.randrange(n) for _ in range(n)]])
        if a is not None:
            values.append(a)
    if not values:
        return None
    values.sort()
    lo = values[int((1 - level) / 2 * (len(values) - 1))]
    hi = values[int((1 + level) / 2 * (len(values) - 1))]
    return (lo, hi)


# --- steps and fields --------------------------------------------------------------------------------

def align_steps(versions: dict[str, list[dict]]) -> list[dict[str, dict | None]]:
    """Steps of N versions of one turn, aligned: by ``call_id`` where a step has one, else by the
    position among the steps without one. Each row maps annotator -> step (``None``: not there).

    >>> a = [{"kind": "think"}, {"kind": "tool_call", "call_id": "c1"}, {"kind": "answer"}]
    >>> b = [{"kind": "tool_call", "call_id": "c1"}, {"kind": "think"}, {"kind": "answer"}]
    >>> [(r["a"]["kind"], r["b"]["kind"]) for r in align_steps({"a": a, "b": b})]
    [('tool_call', 'tool_call'), ('think', 'think'), ('answer', 'answer')]
    """
    rows: dict[Any, dict[str, dict | None]] = {}
    order: list[Any] = []
    for who, steps in versions.items():
        position = 0
        for step in steps:
            if step.get("call_id"):
                key = ("call", step["call_id"], step.get("kind"))
            else:
                key, position = ("pos", position), position + 1
            if key not in rows:
                rows[key] = {}
                order.append(key)
            rows[key][who] = step
    # calls first in the order met, then the positional steps in position order: stable for readers
    keys = [k for k in order if k[0] == "call"] + sorted((k for k in order if k[0] == "pos"), key=lambda k: k[1])
    return [{who: rows[k].get(who) for who in versions} for k in keys]


def normalise_json(text: Any) -> Any:
    """A JSON text (or value) as a canonical string: key order and spacing no longer matter.

    >>> normalise_json('{"b": 1, "a": [1, 2]}') == normalise_json({"a": [1, 2], "b": 1})
    True
    """
    value = text
    if isinstance(text, str):
        try:
            value = json.loads(text)
        except ValueError:
            return text.strip()
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def field_agreement(units: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """Share of annotator pairs whose values agree: exactly, and after JSON normalisation.

    Each unit maps annotator -> the value they left in one field (a call's arguments); ``None``
    means they have no such step and is left out.

    >>> field_agreement([{"a": '{"city": "Paris"}', "b": '{ "city":"Paris" }'}, {"a": "{}", "b": "{}"}])
    {'pairs': 2, 'exact': 0.5, 'normalised': 1.0}
    """
    pairs = exact = same = 0
    for unit in units:
        present = [v for v in unit.values() if v is not None]
        for x, y in combinations(present, 2):
            pairs += 1
            exact += x == y
            same += normalise_json(x) == normalise_json(y)
    return {"pairs": pairs, "exact": exact / pairs if pairs else None, "normalised": same / pairs if pairs else None}
