"""The Celery task of the job machinery: the periodic sweep over every kind of job.

Its name predates this package (``training.tasks.sweep_stale_jobs``): the beat schedule and any
message already in a broker name it so. It runs on ``default`` (``CELERY_TASK_DEFAULT_QUEUE``),
which a worker always consumes; ``studio.celery`` includes this module in every worker.
"""

from __future__ import annotations

from celery import shared_task

from jobs.sweep import sweep_all


@shared_task(name="training.tasks.sweep_stale_jobs", ignore_result=True)
def sweep_stale_jobs() -> list[int]:
    """Every kind of job (training jobs, evaluation runs, snapshot exports): fail running rows whose
    heartbeat is older than ``JOB_HEARTBEAT_TIMEOUT`` (exports are restarted instead, a few times),
    and send again queued rows whose message was lost (``JOB_QUEUED_TIMEOUT``); see ``jobs.queue``."""
    swept = sweep_all()
    return swept["stale"] + swept["queued"]  # the ids of the rows it changed, in the worker's log
