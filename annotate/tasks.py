"""Background work for the annotate app."""

from __future__ import annotations

from celery import shared_task

from annotate.findings import validate
from annotate.models import Trajectory


@shared_task(acks_late=True, time_limit=3600)
def recount_findings(project_id: int) -> int:
    """Re-validate every trajectory of a project (after its tool catalog changed); idempotent."""
    changed = 0
    for t in Trajectory.objects.filter(project_id=project_id).iterator(chunk_size=500):
        n = len(validate(t.to_canonical()))
        if n != t.finding_count:
            Trajectory.objects.filter(pk=t.pk).update(finding_count=n)
            changed += 1
    return changed
