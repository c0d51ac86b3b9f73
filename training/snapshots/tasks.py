"""The export task: a worker claims a queued snapshot, renders it and writes its files.

Named ``training.tasks.export_snapshot`` (its name from before the snapshot package; queued
messages carry it) so ``CELERY_TASK_ROUTES`` sends it to the ``export`` queue; ``training.tasks``
imports it so the worker registers it.
"""

from __future__ import annotations

from celery import shared_task

from training.models import Snapshot
from training.snapshots.export_job import claim, run_snapshot_export


@shared_task(name="training.tasks.export_snapshot", acks_late=True, time_limit=6 * 3600,
             soft_time_limit=6 * 3600 - 60)
def export_snapshot(snapshot_id: int) -> str:
    """Export snapshot ``snapshot_id``; a duplicate delivery (the row is no longer queued) does nothing."""
    if not claim(snapshot_id):
        return "not claimed"
    snapshot = run_snapshot_export(Snapshot.objects.get(pk=snapshot_id))
    return snapshot.status
