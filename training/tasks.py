"""Celery tasks of the training app. Each takes ids, never objects, and claims its row first.

Routing (``CELERY_TASK_ROUTES``): ``training.tasks.train_*`` → the ``train`` queue,
``training.tasks.export_*`` → ``export``; ``sweep_stale_jobs`` runs on ``default`` from the beat
schedule (every 30 s), and each worker runs the same sweep once when it starts (``studio.celery``).
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from training.snapshots.tasks import export_snapshot  # noqa: F401  (registers training.tasks.export_snapshot)

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


@shared_task(name="training.tasks.sweep_stale_jobs", ignore_result=True)
def sweep_stale_jobs() -> list[int]:
    """Every kind of job (training jobs, evaluation runs, snapshot exports): fail running rows whose
    heartbeat is older than ``JOB_HEARTBEAT_TIMEOUT`` (exports are restarted instead, a few times),
    and send again queued rows whose message was lost (``JOB_QUEUED_TIMEOUT``); see
    ``training.job_queue``."""
    from training.job_queue import sweep_all

    swept = sweep_all()
    return swept["stale"] + swept["queued"]  # the ids of the rows it changed, in the worker's log
