"""The worker's side of agreement: the figures refreshed after submissions (default queue)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from annotate.agreement import services
from annotate.agreement.models import OverlapVersion
from annotate.models import Project, Trajectory


@shared_task(acks_late=True, time_limit=600)
def refresh_agreement(project_id: int) -> int | None:
    """Recompute a project's agreement report; returns the report's id (None if the project is gone).

    Idempotent: a duplicate delivery writes one more identical report, and the page reads the newest.
    """
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return None
    return services.compute_report(project).pk


def after_submission(trajectory: Trajectory) -> None:
    """Record a version's first submission and queue the agreement's refresh (after the commit)."""
    if OverlapVersion.objects.filter(copy_id=trajectory.pk, submitted_at__isnull=True).update(
            submitted_at=timezone.now()):
        refresh_agreement.delay_on_commit(trajectory.project_id)
