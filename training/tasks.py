"""Celery tasks of the training app. Each takes ids, never objects, and claims its row first.

Routing (``CELERY_TASK_ROUTES``): ``training.tasks.train_*`` → the ``train`` queue,
``training.tasks.export_*`` → ``export``; ``sweep_stale_jobs`` runs on ``default`` from the beat
schedule (every 30 s).
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from training.snapshot_tasks import export_snapshot  # noqa: F401  (registers training.tasks.export_snapshot)

# A training run may take days; the limit only stops a worker hung past any sane run. The job's
# own heartbeat and the sweep handle a dead worker long before this.
TRAIN_TIME_LIMIT = getattr(settings, "TRAIN_TIME_LIMIT", 7 * 24 * 3600)


@shared_task(name="training.tasks.train_job", acks_late=True, time_limit=TRAIN_TIME_LIMIT)
def train_job(job_id: int) -> str:
    """Run training job ``job_id`` in a supervised subprocess; a duplicate delivery does nothing.

    ``acks_late`` is safe behind the claim: a redelivered message (a worker lost mid-run, Redis'
    visibility timeout on a long run) finds the row no longer queued and returns at once.
    """
    from training.jobs import run_training_job

    return run_training_job(job_id)


@shared_task(name="training.tasks.sweep_stale_jobs")
def sweep_stale_jobs() -> list[int]:
    """Fail running training jobs (and evaluation runs, snapshot exports) whose heartbeat is older than ``JOB_HEARTBEAT_TIMEOUT``."""
    from evaluation.jobs import sweep_stale_runs
    from training.jobs import sweep_stale
    from training.models import Snapshot, TrainingJob

    return (sweep_stale(TrainingJob, settings.JOB_HEARTBEAT_TIMEOUT) + sweep_stale_runs(settings.JOB_HEARTBEAT_TIMEOUT)
            + sweep_stale(Snapshot, settings.JOB_HEARTBEAT_TIMEOUT))
