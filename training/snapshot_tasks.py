"""The export task: a worker claims a queued snapshot, renders it and writes its files.

Named ``training.tasks.export_snapshot`` so ``CELERY_TASK_ROUTES`` sends it to the ``export``
queue; ``training.tasks`` imports it so the worker registers it.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="training.tasks.export_snapshot", acks_late=True, time_limit=6 * 3600,
             soft_time_limit=6 * 3600 - 60)
def export_snapshot(snapshot_id: int) -> str:
    """Export snapshot ``snapshot_id``; a duplicate delivery (the row is no longer queued) does nothing."""
    from training.models import Snapshot
    from training.snapshots import claim, run_snapshot_export

    if not claim(snapshot_id):
        return "not claimed"
    snapshot = run_snapshot_export(Snapshot.objects.get(pk=snapshot_id))
    return snapshot.status
