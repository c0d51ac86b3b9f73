"""(pure) Agreement between annotators' versions of the same trajectories.

Input: ``items``, a dict ``{item_id: {annotator: Version}}`` (a missing annotator is a missing
version: their ratings are missing, never counted as "no label"). Steps are aligned across versions
by (turn, position, call id): two versions' steps are the same unit only where all three match.

Figures (each a dict with the coefficient, the observed agreement, the number of units and a 95%
bootstrap interval over items):
- per error label: Krippendorff's alpha (``krippendorff``, nominal) and Fleiss' kappa (below,
  checked against hand-computed tables in the tests) on "does this step carry label L" (0/1);
- per field: for aligned tool calls, each argument's value matching exactly (as written, key order
  kept) and after JSON normalisation (keys sorted, numbers compared as numbers, JSON in strings parsed);
- per case type: alpha of all label decisions on the items of that case type;
- per annotator pair: Cohen's kappa (scikit-learn) over all label decisions both rated.

An undefined coefficient (every rating the same value: a label never used, or everyone always
agreeing on one value) is ``None``, with its observed agreement still given: alpha and kappa divide by
the expected disagreement, which is then 0.

>>> v = Version(steps=[StepRating(0, 0, "c1", frozenset({"wrong_tool"}))])
>>> w = Version(steps=[StepRating(0, 0, "c1", frozenset())])
>>> label_matrix({1: {"a": v, "b": v}}, "wrong_tool", ["a", "b"])
[[1], [1]]
>>> label_matrix({1: {"a": v, "b": w}}, "wrong_tool", ["a", "b"])
[[1], [0]]
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from itertools import combinations

import krippendorff
import numpy as np

StepKey = tuple[int, int, str]


@dataclass(frozen=True)
class StepRating:
    """One step of one annotator's version: where it is, its labels, and (for calls) its arguments."""

    turn: int
    position: int
    call_id: str
    labels: frozenset = frozenset()
    kind: str = ""
    name: str = ""
    arguments: dict | None = None

    @property
    def key(self) -> StepKey:
        return (self.turn, self.position, self.call_id)


@dataclass
class Version:
    steps: list[StepRating] = field(default_factory=list)
    case_types: tuple = ()

    def by_key(self) -> dict[StepKey, StepRating]:
        return {s.key: s for s in self.steps}


Items = dict  # {item_id: {annotator: Version}}


def annotators_of(items: Items) -> list:
    return sorted({a for versions in items.values() for a in versions}, key=str)


def units(items: Items) -> list[tuple]:
    """Every (item, step key) that at least one version has, in a stable order."""
    out = []
    for item in sorted(items, key=str):
        keys = set()
        for version in items[item].values():
            keys.update(version.by_key())
        out.extend((item, k) for k in sorted(keys))
    return out


def label_matrix(items: Items, label: str, annotators: list) -> list[list]:
    """Annotators x units, 1 where the step carries ``label``, 0 where not, None where missing."""
    unit_list = units(items)
    rows = []
    for a in annotators:
        row = []
        for item, key in unit_list:
            version = items[item].get(a)
            step = version.by_key().get(key) if version is not None else None
            row.append(None if step is None else int(label in step.labels))
        rows.append(row)
    return rows


def observed_agreement(matrix: list[list]) -> float | None:
    """Share of agreeing pairs of ratings among the units rated by at least two (pairable units)."""
    agree = total = 0
    for column in zip(*matrix):
        values = [v for v in column if v is not None]
        for x, y in combinations(values, 2):
            total += 1
            agree += x == y
    return agree / total if total else None


def alpha(matrix: list[list]) -> float | None:
    """Krippendorff's alpha (nominal), None when undefined (fewer than two values, or no pairable unit)."""
    values = {v for row in matrix for v in row if v is not None}
    pairable = [c for c in zip(*matrix) if sum(v is not None for v in c) >= 2]
    if len(values) < 2 or not pairable:
        return None
    data = np.array([[np.nan if v is None else float(v) for v in row] for row in matrix], dtype=float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def fleiss_kappa(matrix: list[list]) -> float | None:
    """Fleiss' kappa over the units every annotator rated (None when undefined).

    P_i = (sum_j n_ij^2 - n) / (n (n - 1)); P_bar their mean; p_j = share of all ratings in category j;
    P_e = sum_j p_j^2; kappa = (P_bar - P_e) / (1 - P_e).
    """
    columns = [c for c in zip(*matrix) if all(v is not None for v in c)]
    n = len(matrix)
    if n < 2 or not columns:
        return None
    categories = sorted({v for c in columns for v in c})
    counts = [[c.count(cat) for cat in categories] for c in columns]
    p_i = [(sum(x * x for x in row) - n) / (n * (n - 1)) for row in counts]
    p_bar = sum(p_i) / len(p_i)
    total = n * len(columns)
    p_e = sum((sum(row[j] for row in counts) / total) ** 2 for j in range(len(categories)))
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1 - p_e)


def cohen_kappa(x: list, y: list) -> float | None:
    """Cohen's kappa (scikit-learn) on the units both rated; None when undefined."""
    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if not pairs or len({v for p in pairs for v in p}) < 2:
        return None
    # (imported here: scikit-learn's metrics take 2-3 s to import, and the web process imports this
    # module through the agreement pages; only the worker's refresh computes kappas)
    from sklearn.metrics import cohen_kappa_score

    value = cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs])
    return None if math.isnan(value) else float(value)


def bootstrap(items: Items, statistic, *, rounds: int = 200, seed: int = 0) -> tuple | None:
    """A 95% percentile interval of ``statistic(items)`` over items resampled with replacement.

    Items (trajectories), not steps, are resampled: a trajectory's steps are not independent.
    None when fewer than two items, or the statistic is undefined on most resamples.
    """
    ids = sorted(items, key=str)
    if len(ids) < 2:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(rounds):
        sample = {i: items[ids[rng.randrange(len(ids))]] for i in range(len(ids))}
        value = statistic(sample)
        if value is not None:
            values.append(value)
    if len(values) < rounds / 2:
        return None
    values.sort()
    return (values[int(0.025 * (len(values) - 1))], values[int(math.ceil(0.975 * (len(values) - 1)))])


def _figure(items: Items, matrix_of, *, rounds: int, seed: int) -> dict:
    matrix = matrix_of(items)
    return {
        "alpha": alpha(matrix),
        "fleiss_kappa": fleiss_kappa(matrix),
        "observed": observed_agreement(matrix),
        "units": sum(1 for c in zip(*matrix) if sum(v is not None for v in c) >= 2) if matrix else 0,
        "interval": bootstrap(items, lambda s: alpha(matrix_of(s)), rounds=rounds, seed=seed),
    }


def all_labels_matrix(items: Items, labels: list[str], annotators: list) -> list[list]:
    """Every label's matrix side by side (one decision per step and label)."""
    rows = [[] for _ in annotators]
    for label in labels:
        for row, part in zip(rows, label_matrix(items, label, annotators)):
            row.extend(part)
    return rows


def normalise(value):
    """A JSON value compared by meaning: strings holding JSON parsed, numbers as floats, keys sorted."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return normalise(parsed) if isinstance(parsed, (dict, list)) else value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def field_agreement(items: Items) -> dict:
    """Per argument name of aligned tool calls: the share of version pairs whose values match
    exactly (JSON text as written) and after normalisation. A pair where one call lacks the
    argument counts as a mismatch; ``pairs`` is how many version pairs were compared."""
    tallies: dict[str, list[int]] = {}
    for versions in items.values():
        for a, b in combinations(sorted(versions, key=str), 2):
            steps_a, steps_b = versions[a].by_key(), versions[b].by_key()
            for key in sorted(set(steps_a) & set(steps_b)):
                x, y = steps_a[key], steps_b[key]
                if x.kind != "tool_call" or y.kind != "tool_call":
                    continue
                args_x, args_y = x.arguments or {}, y.arguments or {}
                for name in sorted(set(args_x) | set(args_y)):
                    t = tallies.setdefault(name, [0, 0, 0])
                    t[0] += 1
                    if name in args_x and name in args_y:
                        t[1] += json.dumps(args_x[name]) == json.dumps(args_y[name])
                        t[2] += normalise(args_x[name]) == normalise(args_y[name])
    return {name: {"pairs": n, "exact": exact / n, "normalised": norm / n}
            for name, (n, exact, norm) in sorted(tallies.items())}


def pair_kappas(items: Items, labels: list[str]) -> list[dict]:
    """Cohen's kappa for each pair of annotators over all their shared label decisions."""
    annotators = annotators_of(items)
    out = []
    for a, b in combinations(annotators, 2):
        shared = {i: {a: v[a], b: v[b]} for i, v in items.items() if a in v and b in v}
        rows = all_labels_matrix(shared, labels, [a, b]) if shared else [[], []]
        out.append({"a": a, "b": b, "items": len(shared), "kappa": cohen_kappa(rows[0], rows[1]),
                    "observed": observed_agreement(rows)})
    return out


def agreement(items: Items, labels: list[str], *, rounds: int = 200, seed: int = 0) -> dict:
    """All the figures for ``items`` (see the module's docstring), JSON-serialisable."""
    annotators = annotators_of(items)
    per_label = {label: _figure(items, lambda s, L=label: label_matrix(s, L, annotators_of(s) or annotators),
                                rounds=rounds, seed=seed)
                 for label in labels}
    case_types = sorted({c for versions in items.values() for v in versions.values() for c in v.case_types})
    per_case_type = {}
    for case in case_types:
        subset = {i: v for i, v in items.items() if any(case in x.case_types for x in v.values())}
        per_case_type[case] = _figure(subset, lambda s: all_labels_matrix(s, labels, annotators_of(s)),
                                      rounds=rounds, seed=seed)
    return {
        "items": len(items),
        "annotators": [str(a) for a in annotators],
        "overall": _figure(items, lambda s: all_labels_matrix(s, labels, annotators_of(s)), rounds=rounds, seed=seed),
        "labels": per_label,
        "fields": field_agreement(items),
        "case_types": per_case_type,
        "pairs": [{**p, "a": str(p["a"]), "b": str(p["b"])} for p in pair_kappas(items, labels)],
    }


def item_agreement(versions: dict, labels: list[str]) -> float | None:
    """One item's observed agreement over its label decisions (adjudication compares it to the threshold)."""
    annotators = sorted(versions, key=str)
    return observed_agreement(all_labels_matrix({0: versions}, labels, annotators))
