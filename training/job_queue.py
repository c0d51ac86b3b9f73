"""Sending job rows to the broker, and finding the ones whose message was lost.

A job row (``JobFields``) is the source of truth; its broker message is only a wake-up call. A
message can go (Redis restarted without persistence, a worker killed after taking it, a purge), and
then the row would wait "queued" for ever. So:

- Every row's task is sent with ``delay(pk)`` after the transaction commits (``enqueue_training``,
  ``enqueue_eval``, ``create_snapshot``); the worker's conditional UPDATE (``supervisor.claim``)
  makes a duplicate delivery harmless, so sending again is always safe.
- ``message_waiting`` looks in the broker (Redis lists and the unacked hash, or the filesystem
  transport's folder) for a message of the row's task with the row's id as its argument: True,
  False, or None when it cannot tell.
- ``sweep_queued`` (the periodic sweep, also at worker start): a row queued for longer than
  ``JOB_QUEUED_TIMEOUT`` whose message is not in the broker is sent again, at most
  ``JOB_MAX_ATTEMPTS`` times (counted on the row), then failed with the reason. A row whose message
  is still waiting is left alone: a long queue is not a lost message.
- ``revive_if_lost``: the same for one row, when a user asks for it again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from training.models import JobStatus

log = logging.getLogger(__name__)

# Which task runs each kind of row (its name routes it to its queue): module, attribute.
TASKS = {
    "training.snapshot": ("training.snapshot_tasks", "export_snapshot"),
    "training.trainingjob": ("training.tasks", "train_job"),
    "evaluation.evalrun": ("evaluation.tasks", "eval_run"),
}


def task_of(model):
    import importlib

    module, attr = TASKS[model._meta.label_lower]
    return getattr(importlib.import_module(module), attr)


def queue_of(model) -> str:
    """The queue the row's task is routed to (``CELERY_TASK_ROUTES``)."""
    from studio.celery import app

    queue = app.amqp.router.route({}, task_of(model).name).get("queue")
    return getattr(queue, "name", queue) or settings.CELERY_TASK_DEFAULT_QUEUE


def send(model, pk: int) -> None:
    """Send the row's task now (inside a transaction, use ``transaction.on_commit``)."""
    task_of(model).delay(pk)


# --- looking in the broker -----------------------------------------------------------------------

def message_waiting(model, pk: int, taken_within: float = 300, *, connection=None) -> bool | None:
    """Is a message for this row in the broker (queued, or taken by a worker in the last
    ``taken_within`` seconds and not yet acked)?

    None when the transport cannot be looked into. Raises the broker's error when it is down.
    """
    from studio.celery import app

    task, queue = task_of(model).name, queue_of(model)

    def names_row(raw) -> bool:
        return _message_names(raw, task, pk)

    with connection or app.connection_for_read() as conn:
        transport = conn.transport.driver_type
        if transport in ("redis", "rediss"):
            return _in_redis(conn.default_channel, queue, names_row, taken_within)
        if transport == "filesystem":
            return _in_folder(conn.transport_options or {}, queue, names_row)
    return None


def _message_names(raw, task: str, pk: int) -> bool:
    """Is ``raw`` (a message as the transport stores it) a call of ``task`` on row ``pk``?"""
    import ast

    try:
        message = json.loads(raw)
    except ValueError:
        return False
    if isinstance(message, list):  # Redis' unacked hash: [message, exchange, routing key]
        message = message[0] if message else {}
    headers = message.get("headers") or {} if isinstance(message, dict) else {}
    if headers.get("task") != task:
        return False
    try:
        args = ast.literal_eval(headers.get("argsrepr") or "()")
    except (ValueError, SyntaxError):
        return False
    return isinstance(args, (list, tuple)) and list(args) == [pk]


def _in_redis(channel, queue: str, names_row, taken_within: float) -> bool:
    import time

    client = channel.client
    # kombu keeps one list per priority step (the plain name for priority 0) and a hash of the
    # messages delivered to a worker but not acked yet (redelivered after the visibility timeout).
    keys = {channel._q_for_pri(queue, pri) for pri in channel.priority_steps}
    if any(names_row(m) for key in keys for m in client.lrange(key, 0, -1)):
        return True
    for tag, message in client.hgetall(channel.unacked_key).items():
        if names_row(message):
            # Taken by a worker that has not claimed the row for longer than the timeout: that
            # worker died with it (kombu would only give it back after the visibility timeout, an hour).
            taken = client.zscore(channel.unacked_index_key, tag)
            if taken is None or time.time() - taken <= taken_within:
                return True
    return False


def _in_folder(options: dict, queue: str, names_row) -> bool:
    folder = Path(options.get("data_folder_in") or ".")
    for path in folder.glob(f"*.{queue}.msg"):
        try:
            if names_row(path.read_bytes()):
                return True
        except OSError:  # taken by a worker while we looked
            continue
    return False


# --- re-enqueueing -------------------------------------------------------------------------------

def max_attempts() -> int:
    """How many times in all a job's message is sent (the first one included)."""
    return max(1, int(getattr(settings, "JOB_MAX_ATTEMPTS", 3)))


def can_retry(row) -> bool:
    return row.attempts + 1 < max_attempts()


def lost_reason(model, attempts: int, waited: int) -> str:
    return (f"Its message never reached a worker: sent {attempts + 1} times, each time lost (the last one "
            f"{waited} s ago). Check that the broker keeps its data (Redis with AOF) and that a worker "
            f"consumes the `{queue_of(model)}` queue, then launch it again.")


def requeue(model, row, *, from_status: str = JobStatus.QUEUED, message: str = "", **guard) -> bool:
    """Send ``row`` again (one more attempt) if it is still ``from_status`` (and matches ``guard``).

    The conditional UPDATE makes this race-free against a worker that claims the row meanwhile and
    against another sweep: only the caller whose UPDATE matched sends the message.
    """
    attempt = row.attempts + 1
    fields = {"status": JobStatus.QUEUED, "attempts": attempt, "enqueued_at": timezone.now()}
    if from_status != JobStatus.QUEUED:
        fields.update(started_at=None, heartbeat_at=None, worker_pid=None, progress=0.0)
    if message:
        fields["message"] = message[:500]
    done = model.objects.filter(pk=row.pk, status=from_status, attempts=row.attempts, **guard).update(**fields) == 1
    if done:
        log.warning("re-enqueued %s %s (attempt %s): %s", model.__name__, row.pk, attempt, message)
        try:
            send(model, row.pk)
        except Exception:  # the broker is down: the row stays queued and the next sweep tries again
            log.exception("could not re-enqueue %s %s", model.__name__, row.pk)
    return done


def revive_if_lost(model, row, *, timeout: float = 0) -> str:
    """One queued row: 'waiting' (its message is in the broker, or it is younger than ``timeout``),
    'requeued', 'failed' (out of attempts), 'unknown' (the broker could not be asked), or 'taken'
    (a worker claimed it meanwhile)."""
    now = timezone.now()
    since = row.enqueued_at or row.created_at
    if timeout and since > now - timezone.timedelta(seconds=timeout):
        return "waiting"
    try:
        waiting = message_waiting(model, row.pk, taken_within=max(timeout, 1.0))
    except Exception as exc:  # the broker is down: nothing can be sent now anyway
        log.warning("could not look for %s %s in the broker: %s", model.__name__, row.pk, exc)
        return "unknown"
    if waiting:
        return "waiting"
    if not can_retry(row):
        waited = int((now - since).total_seconds())
        failed = model.objects.filter(pk=row.pk, status=JobStatus.QUEUED, attempts=row.attempts).update(
            status=JobStatus.FAILED, finished_at=now, message="Failed: its message was lost",
            error=lost_reason(model, row.attempts, waited)) == 1
        return "failed" if failed else "taken"
    why = "its message was lost" if waiting is False else "no worker took it in time"
    message = f"Re-queued: {why} (attempt {row.attempts + 2} of {max_attempts()})"
    return "requeued" if requeue(model, row, message=message) else "taken"


def sweep_queued(model, timeout: float) -> list[int]:
    """Re-enqueue (or fail, out of attempts) the rows queued for more than ``timeout`` seconds whose
    message is gone; return their ids."""
    cutoff = timezone.now() - timezone.timedelta(seconds=timeout)
    rows = (model.objects.filter(status=JobStatus.QUEUED)
            .annotate(since=Coalesce("enqueued_at", "created_at")).filter(since__lt=cutoff))
    out = []
    for row in rows:
        outcome = revive_if_lost(model, row, timeout=timeout)
        if outcome == "unknown":
            break  # the broker is down: try again at the next sweep
        if outcome in ("requeued", "failed"):
            out.append(row.pk)
    return out


def sweep_all() -> dict[str, list[int]]:
    """The periodic sweep over every kind of job: running rows with a stale heartbeat (exports are
    restarted, the others failed with the reason), then queued rows whose message was lost."""
    from evaluation.models import EvalRun
    from training.models import Snapshot, TrainingJob
    from training.supervisor import sweep_stale

    heartbeat = settings.JOB_HEARTBEAT_TIMEOUT
    queued = getattr(settings, "JOB_QUEUED_TIMEOUT", 300)
    out = {
        "stale": (sweep_stale(TrainingJob, heartbeat) + sweep_stale(EvalRun, heartbeat, marker="evaluation.runner")
                  + sweep_stale(Snapshot, heartbeat, requeue=True)),
        "queued": [],
    }
    for model in (Snapshot, TrainingJob, EvalRun):
        out["queued"] += sweep_queued(model, queued)
    return out

