"""Celery tasks of the evaluation app. Each takes ids, never objects, and claims its row first.

Routing (``CELERY_TASK_ROUTES``): ``evaluation.tasks.*`` → the ``eval`` queue (GPU machines or
an endpoint's neighbours take it). Stale runs are swept by ``jobs.tasks.sweep_stale_jobs``
with the training jobs (one periodic task for every kind of job; ``EvaluationConfig.ready`` registers the kind).
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from evaluation.jobs import run_eval_job
from evaluation.judge import run_judge_job

# An evaluation of a large set on a slow endpoint may take a day; the limit only stops a worker
# hung past any sane run. The heartbeat and the sweep handle a dead worker long before this.
EVAL_TIME_LIMIT = getattr(settings, "EVAL_TIME_LIMIT", 2 * 24 * 3600)


@shared_task(name="evaluation.tasks.eval_run", acks_late=True, time_limit=EVAL_TIME_LIMIT)
def eval_run(run_id: int) -> str:
    """Run evaluation ``run_id`` in a supervised subprocess; a duplicate delivery does nothing
    (the claim finds the row no longer queued)."""
    return run_eval_job(run_id)


@shared_task(name="evaluation.tasks.judge_run", acks_late=True, time_limit=EVAL_TIME_LIMIT)
def judge_run(run_id: int) -> str:
    """Run judge run ``run_id`` in this worker; a duplicate delivery does nothing (the claim)."""
    return run_judge_job(run_id)
