"""Pairs implied by an annotator's correction: the corrected continuation chosen, the original rejected (pure).

``annotate.pairs.services.refresh_suggestions`` runs this over a trajectory's first and latest
revisions and stores what it finds as suggestions for a lead to accept or dismiss.
"""

from __future__ import annotations

import copy

from annotate.pairs.core import Pair, fork, guess_category, signature_key
from annotate.trajectory import Trajectory

ASSISTANT_KINDS = ("think", "tool_call", "answer")


def suggest_from_revisions(original: Trajectory, corrected: Trajectory) -> list[Pair]:
    """Pairs implied by an annotator's correction: the original continuation is rejected.

    For each turn whose user message is unchanged and whose steps first differ at an assistant
    step, the pair's context is the corrected trajectory up to that step, chosen is the corrected
    rest of the turn and rejected the original rest. Changes to labels, notes or train flags only,
    and changed tool results (the environment, not the model), suggest nothing.
    """
    out: list[Pair] = []
    for ti, (before, after) in enumerate(zip(original.turns, corrected.turns)):
        if before.user != after.user:
            continue
        ka, kb = [signature_key(s) for s in before.steps], [signature_key(s) for s in after.steps]
        if ka == kb:
            continue
        i = next((k for k, (x, y) in enumerate(zip(ka, kb)) if x != y), min(len(ka), len(kb)))
        first = [seq[i] for seq in (before.steps, after.steps) if i < len(seq)]
        if not any(s.kind in ASSISTANT_KINDS for s in first) or any(s.kind == "tool_result" for s in first):
            continue
        pair = fork(corrected, ti, i, source="correction")
        pair.rejected = copy.deepcopy(before.steps[i:])
        if not pair.chosen or not pair.rejected:
            continue
        pair.category = guess_category(pair.context, pair.chosen, pair.rejected)
        out.append(pair)
    return out


def correction_author(revisions: list[tuple[int, str, int | None]]) -> int | None:
    """Who made the correction, from a trajectory's revisions ``(version, status, author)`` in order.

    The latest revision that kept its predecessor's status changed the document (an edit or a
    revert); one that moved the status (submit, approve, reject, reopen) did not, so the lead who
    approved is not credited with the annotator's correction.

    >>> correction_author([(1, "draft", None), (2, "draft", 7), (3, "submitted", 7), (4, "approved", 3)])
    7
    >>> correction_author([(1, "draft", None), (2, "submitted", 7)]) is None
    True
    """
    author = None
    for (_, before, _), (_, status, who) in zip(revisions, revisions[1:]):
        if status == before:
            author = who
    return author
