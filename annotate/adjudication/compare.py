"""(pure) Lining up N versions of one trajectory step by step, marking where they differ, and
building the adjudicated document from a lead's per-step choices, with each choice's provenance.

Steps are aligned by position within their turn (blind versions start from the same trajectory;
steps an annotator inserted or deleted show as a gap in the others). A lead's choice for a step is
one version's step as it stands (``{"pick": "ann"}``), or one version's step with the union of
every version's labels (``{"pick": "ann", "merge_labels": True}``), or dropping a step that only
some versions have (``{"drop": True}``). A step without a choice where the versions agree takes
the agreed step; a step where they differ needs a choice (no silent winner).

>>> from annotate.trajectory import Trajectory, Turn, Step
>>> a = Trajectory(turns=[Turn(user="q", steps=[Step(kind="answer", text="hi", labels=["ungrounded_answer"])])])
>>> b = Trajectory(turns=[Turn(user="q", steps=[Step(kind="answer", text="hi")])])
>>> rows = compare({"ann": a, "bob": b})
>>> rows[0].differs, rows[0].fields
(True, ['labels'])
>>> doc, provenance = adjudicate({"ann": a, "bob": b}, {(0, 0): {"pick": "bob"}})
>>> doc.turns[0].steps[0].labels, provenance
([], [{'turn': 0, 'step': 0, 'from': 'bob', 'merged_labels': False}])
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from annotate.agreement.figures import StepRating, Version, item_agreement
from annotate.trajectory import Step, Trajectory
from core.errors import InputError

COMPARED = ("kind", "text", "name", "arguments", "call_id", "ok", "labels", "note", "train")


class AdjudicationError(InputError):
    """A choice that cannot apply; ``field`` names the step (``turn 1 step 2``)."""


@dataclass
class StepRow:
    """One aligned step position: each version's step there (None: that version has no such step)."""

    turn: int
    step: int
    versions: dict[str, Step | None]
    fields: list[str] = field(default_factory=list)  # the compared fields that differ

    @property
    def differs(self) -> bool:
        return bool(self.fields)


def _values(step: Step | None) -> dict | None:
    if step is None:
        return None
    return {name: getattr(step, name) for name in COMPARED}


def compare(versions: dict[str, Trajectory]) -> list[StepRow]:
    """The aligned steps of every version, in order, each with the fields where versions differ
    (``["missing"]`` when some version has no step there)."""
    if not versions:
        return []
    turns = max(len(d.turns) for d in versions.values())
    rows = []
    for ti in range(turns):
        width = max((len(d.turns[ti].steps) for d in versions.values() if ti < len(d.turns)), default=0)
        for si in range(width):
            steps = {who: (d.turns[ti].steps[si] if ti < len(d.turns) and si < len(d.turns[ti].steps) else None)
                     for who, d in versions.items()}
            values = [_values(s) for s in steps.values()]
            if any(v is None for v in values):
                differing = ["missing"]
            else:
                differing = [f for f in COMPARED if any(v[f] != values[0][f] for v in values[1:])]
            rows.append(StepRow(ti, si, steps, differing))
    return rows


def adjudicate(versions: dict[str, Trajectory], choices: dict[tuple[int, int], dict]) -> tuple[Trajectory, list[dict]]:
    """The adjudicated document and, per kept step, where it came from. The first version gives
    the turns' user text, system, tools and metadata; ``choices`` are keyed by (turn, step)."""
    if not versions:
        raise AdjudicationError("there are no versions to adjudicate", "versions")
    base = copy.deepcopy(next(iter(versions.values())))
    shapes = {tuple(t.user for t in d.turns) for d in versions.values()}
    if len(shapes) > 1:
        # Steps are chosen one by one; a turn added, removed or reworded has no step-level choice.
        raise AdjudicationError("the versions differ in their turns (user messages); make them agree first", "turns")
    rows = compare(versions)
    unknown = [k for k in choices if not any((r.turn, r.step) == k for r in rows)]
    if unknown:
        t, s = unknown[0]
        raise AdjudicationError("there is no such step in any version", f"turn {t + 1} step {s + 1}")
    out_steps: dict[int, list[Step]] = {}
    provenance = []
    for row in rows:
        where = f"turn {row.turn + 1} step {row.step + 1}"
        choice = choices.get((row.turn, row.step))
        if choice is None:
            if row.differs:
                raise AdjudicationError("the versions differ here: pick one", where)
            first = next(iter(versions))
            choice = {"pick": first, "agreed": True}
        if choice.get("drop"):
            provenance.append({"turn": row.turn, "step": row.step, "from": None, "dropped": True})
            continue
        who = choice.get("pick")
        if who not in versions:
            raise AdjudicationError(f"pick one of: {', '.join(versions)}", where)
        chosen = row.versions[who]
        if chosen is None:
            raise AdjudicationError(f"{who}'s version has no step here: pick another or drop it", where)
        step = copy.deepcopy(chosen)
        merged = bool(choice.get("merge_labels"))
        if merged:
            step.labels = sorted({lb for s in row.versions.values() if s is not None for lb in s.labels})
        out_steps.setdefault(row.turn, []).append(step)
        entry = {"turn": row.turn, "step": row.step, "from": "agreed" if choice.get("agreed") else who,
                 "merged_labels": merged}
        provenance.append(entry)
    for ti, turn in enumerate(base.turns):
        turn.steps = out_steps.get(ti, [])
    return base, provenance


def rating_version(doc: Trajectory) -> Version:
    """A document as the agreement figures read a version (steps by turn, position and call id)."""
    return Version(steps=[StepRating(ti, si, s.call_id, frozenset(s.labels), s.kind, s.name,
                                     s.arguments if isinstance(s.arguments, dict) else None)
                          for ti, turn in enumerate(doc.turns) for si, s in enumerate(turn.steps)],
                   case_types=tuple(doc.meta.case_types))


def below_threshold(versions: dict[str, Trajectory], labels: list[str], threshold: float) -> bool:
    """True when the versions' observed agreement on their label decisions is under ``threshold``
    (or undefined with differences left: then a person must look)."""
    value = item_agreement({n: rating_version(d) for n, d in versions.items()}, labels)
    if value is None:
        return any(r.differs for r in compare(versions))
    return value < threshold
