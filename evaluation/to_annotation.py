"""Saving what an evaluation result becomes for annotators: a draft trajectory or a draft preference
pair, linked back to the result (``EvalItemResult.sent_trajectory`` / ``.pair``).

Single-turn results (``evaluation.jobs``) and multi-turn episodes (``evaluation.multiturn_jobs``)
build their trajectory or pair differently; saving them is this one code path.
"""

from __future__ import annotations

from django.db import transaction

from annotate.ingest.writer import merge_tool_catalog, write_trajectories
from annotate.pairs import Pair
from annotate.pairs.services import save_pair
from annotate.trajectory import Step, Trajectory
from evaluation.models import EvalItemResult


def save_draft_trajectory(result: EvalItemResult, traj: Trajectory, *, user, tags: tuple[str, ...] = ()):
    """Write ``traj`` as a draft trajectory of the run's project (source ``evaluation``, split
    ``train``), linked to ``result``; returns the row."""
    run = result.run
    traj.meta.source = "evaluation"
    traj.meta.external_id = f"eval-{run.pk}-{result.item_id}"[:300]
    traj.meta.split = "train"
    traj.meta.tags = ["evaluation", f"eval-run-{run.pk}", *tags]
    with transaction.atomic():
        merge_tool_catalog(run.project, [traj])
        [row] = write_trajectories(run.project, [traj], user)
        EvalItemResult.objects.filter(pk=result.pk).update(sent_trajectory=row)
    result.sent_trajectory = row
    return row


def save_draft_pair(result: EvalItemResult, *, context: Trajectory, chosen: list[Step], rejected: list[Step],
                    category: str, note: str, user):
    """Save a draft pair (source ``evaluation``) of the run's project, linked to ``result``; raises
    ``annotate.pairs.PairError`` when the pair is not acceptable. Returns the row."""
    run = result.run
    pair = Pair(context=context, chosen=chosen, rejected=rejected, category=category, source="evaluation",
                note=note, external_id=f"eval-{run.pk}-{result.position}")
    trajectory = result.set_item.trajectory if result.set_item else None
    with transaction.atomic():
        row = save_pair(run.project, pair, user=user, trajectory=trajectory)
        EvalItemResult.objects.filter(pk=result.pk).update(pair=row)
    result.pair = row
    return row
