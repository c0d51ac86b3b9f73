"""Celery tasks of the training app. Each takes ids, never objects, and claims its row first.

Routing (``CELERY_TASK_ROUTES``): ``training.tasks.train_*`` → the ``train`` queue,
``training.tasks.export_*`` → ``export``. The sweep of stale and lost jobs of every kind is the job
machinery's (``jobs.tasks.sweep_stale_jobs``; its name, ``training.tasks.sweep_stale_jobs``, is kept).
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from training.jobs import run_training_job, run_training_node
from training.snapshots.tasks import export_snapshot  # noqa: F401  (registers training.tasks.export_snapshot)

# A training run may take days; the limit only stops a worker hung past any sane run. The job's
# own heartbeat and the sweep handle a dead worker long before this.
TRAIN_TIME_LIMIT = getattr(settings, "TRAIN_TIME_LIMIT", 7 * 24 * 3600)


@shared_task(name="training.tasks.train_node", acks_late=True, time_limit=TRAIN_TIME_LIMIT)
def train_node(job_id: int, machine_rank: int) -> str:
    """Another node of a running multi-node job (``training.jobs.run_training_node``); the first
    node's ``train_job`` sends one to the job's queue for each."""
    return run_training_node(job_id, machine_rank)


@shared_task(name="training.tasks.train_job", acks_late=True, time_limit=TRAIN_TIME_LIMIT)
def train_job(job_id: int) -> str:
    """Run training job ``job_id`` in a supervised subprocess; a duplicate delivery does nothing.

    ``acks_late`` is safe behind the claim: a redelivered message (a worker lost mid-run, Redis'
    visibility timeout on a long run) finds the row no longer queued and returns at once.
    """
    return run_training_job(job_id)
