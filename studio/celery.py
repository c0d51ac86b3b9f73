"""The Celery app. Embedded default: kombu's filesystem transport under the data dir.

A worker survives a Redis restart (``studio.broker_fixes``). Each worker sweeps the job rows once
when it starts (``worker_ready``), so jobs left behind by a crash are dealt with at once, whichever
worker comes back first and whether or not beat runs.
"""

import logging
import os

from celery import Celery
from celery.signals import worker_ready
from django.db import connections

from studio.broker_fixes import keep_workers_alive_through_redis_restarts

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
keep_workers_alive_through_redis_restarts()

app = Celery("studio", include=["jobs.tasks"])  # the sweep (jobs is no app: not autodiscovered)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def sweep_at_start(**_) -> None:
    # Not at the top: this module loads with the settings (studio/__init__), before the apps, and
    # jobs.sweep imports models.
    from jobs.sweep import sweep_all

    try:
        swept = sweep_all()
        logging.getLogger("studio.celery").info("sweep at worker start: %s", swept)
    except Exception:  # a sweep that fails must not stop the worker; beat's sweep tries again
        logging.getLogger("studio.celery").exception("the sweep at worker start failed")
    finally:
        connections.close_all()  # a pool process forked later must not inherit this connection
