"""The periodic sweep over every registered kind of job (``jobs.kinds``).

- ``sweep_stale``: running rows whose heartbeat is older than the timeout are failed with the
  reason, or queued again where starting over is safe (exports).
- ``sweep_all``: that, then the queued rows whose message was lost (``jobs.queue.sweep_queued``);
  the Celery task ``jobs.tasks.sweep_stale_jobs`` runs it every ``JOB_SWEEP_EVERY`` seconds
  (``JOB_HEARTBEAT_TIMEOUT``, ``JOB_QUEUED_TIMEOUT``), and each worker once when it starts.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs import queue
from jobs.kinds import KINDS
from jobs.processes import HOST, is_our_process_group, stop_process_group
from jobs.rows import JobStatus

log = logging.getLogger(__name__)


def sweep_stale(model, timeout: float, *, marker: str | None = None, requeue: bool | None = None) -> list[int]:
    """Fail running rows whose heartbeat is older than ``timeout`` seconds; return their ids.

    A row whose cancel was requested ends cancelled instead. With ``requeue`` (work that is safe
    to start over, such as an export; by default the kind's ``restart``), the row is queued again
    while it has attempts left (``jobs.queue``). Where the dead worker ran on this machine, a
    runner process it left behind (its command line names ``marker``, by default the kind's
    runner) is killed too (it normally stops on its own when its parent dies; see
    ``jobs.runner_io.watch_parent``).
    """
    kind = KINDS.get(model._meta.label_lower)
    marker = (kind.runner if kind else "") if marker is None else marker
    requeue = (kind.restart if kind else False) if requeue is None else requeue
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=timeout)
    stale = model.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
    swept = []
    for row in stale:
        seen = row.heartbeat_at or row.started_at
        silent = int((now - seen).total_seconds()) if seen else int(timeout)
        if requeue and not row.cancel_requested and queue.can_retry(row):
            again = (f"Restarting: its worker stopped responding (no heartbeat for {silent} s); "
                     f"attempt {row.attempts + 2} of {queue.max_attempts()}")
            if queue.requeue(model, row, from_status=JobStatus.RUNNING, message=again,
                             heartbeat_at=row.heartbeat_at):
                swept.append(row.pk)
            continue
        if row.cancel_requested:
            status, error, message = JobStatus.CANCELLED, "", "Cancelled (its worker had stopped responding)"
        else:
            status = JobStatus.FAILED
            message = "Failed: the worker stopped responding"
            advice = (f"It was restarted {row.attempts} time(s) and stopped each time; retry it once the workers "
                      f"are healthy." if requeue else "Resume it from its last checkpoint, or launch it again.")
            error = (f"No heartbeat for {silent} s (the limit is {int(timeout)} s): the worker or its machine "
                     f"stopped while this job ran. {advice}")
        done = model.objects.filter(pk=row.pk, status=JobStatus.RUNNING, heartbeat_at=row.heartbeat_at).update(
            status=status, finished_at=now, error=error, message=message)
        if not done:
            continue  # it beat or finished in the meantime
        swept.append(row.pk)
        log.warning("swept %s %s: %s", model.__name__, row.pk, message)
        host = getattr(row, "worker_host", "")
        if marker and row.worker_pid and host == HOST and any(  # a kind may have several runners, comma-separated
                is_our_process_group(row.worker_pid, m) for m in marker.split(",")):
            stop_process_group(row.worker_pid, grace=5)
    return swept


def sweep_all() -> dict[str, list[int]]:
    """The periodic sweep over every kind of job: running rows with a stale heartbeat (exports are
    restarted, the others failed with the reason), then queued rows whose message was lost."""
    heartbeat = settings.JOB_HEARTBEAT_TIMEOUT
    queued = getattr(settings, "JOB_QUEUED_TIMEOUT", 300)
    models = [kind.model_class() for kind in KINDS.values()]
    out = {"stale": [pk for model in models for pk in sweep_stale(model, heartbeat)], "queued": []}
    for model in models:
        out["queued"] += queue.sweep_queued(model, queued)
    return out
