"""Sending job rows to the broker, and finding the ones whose message was lost.

A job row (``JobFields``) is the source of truth; its broker message is only a wake-up call. A
message can go (Redis restarted without persistence, a worker killed after taking it, a purge), and
then the row would wait "queued" for ever. So:

- Every row's task is sent with ``delay(pk)`` after the transaction commits (``enqueue_training``,
  ``enqueue_eval``, ``create_snapshot``); the worker's conditional UPDATE (``jobs.rows.claim``)
  makes a duplicate delivery harmless, so sending again is always safe.
- ``message_waiting`` looks in the broker (Redis lists and the unacked hash, or the filesystem
  transport's folder) for a message of the row's task with the row's id as its argument: True,
  False, or None when it cannot tell.
- ``sweep_queued`` (part of the periodic sweep, ``jobs.sweep``, also at worker start): a row queued for longer than
  ``JOB_QUEUED_TIMEOUT`` whose message is not in the broker is sent again, at most
  ``JOB_MAX_ATTEMPTS`` times (counted on the row), then failed with the reason. A row whose message
  is still waiting is left alone: a long queue is not a lost message.
- ``revive_if_lost``: the same for one row, when a user asks for it again.
"""

from __future__ import annotations

import ast
import json
import logging
import time
from pathlib import Path

from django.conf import settings
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.kinds import router_of, task_of
from jobs.rows import JobStatus

log = logging.getLogger(__name__)


def queue_of(model, row=None) -> str:
    """The queue the row's task is routed to: the kind's own router given a row (training jobs by
    the GPUs they ask for), else ``CELERY_TASK_ROUTES``."""
    if row is not None and (router := router_of(model)):
        return router(row)
    task = task_of(model)  # bound to the project's Celery app (studio.celery)
    queue = task.app.amqp.router.route({}, task.name).get("queue")
    return getattr(queue, "name", queue) or settings.CELERY_TASK_DEFAULT_QUEUE


def send(model, pk: int) -> None:
    """Send the row's task now (inside a transaction, use ``transaction.on_commit``)."""
    queue = queue_of(model, model.objects.get(pk=pk)) if router_of(model) else None
    if queue and queue != queue_of(model):
        task_of(model).apply_async((pk,), queue=queue)
    else:
        task_of(model).delay(pk)  # the task's own route (CELERY_TASK_ROUTES)


def send_task(model, name: str, args: tuple, queue: str) -> None:
    """Send another task of a kind's job (a multi-node run's other nodes) to ``queue``, with the
    kind's task's Celery app."""
    task_of(model).app.send_task(name, args=args, queue=queue)


# --- looking in the broker -----------------------------------------------------------------------

def message_waiting(model, pk: int, taken_within: float = 300, *, connection=None) -> bool | None:
    """Is a message for this row in the broker (queued, or taken by a worker in the last
    ``taken_within`` seconds and not yet acked)? None when the transport cannot be looked into.
    Raises the broker's error when it is down."""
    row = model.objects.filter(pk=pk).first() if router_of(model) else None
    waiting = rows_waiting(model, taken_within, connection=connection,
                           queues={queue_of(model, row)} if row is not None else None)
    return None if waiting is None else pk in waiting


def rows_waiting(model, taken_within: float = 300, *, connection=None, queues: set[str] | None = None
                 ) -> set[int] | None:
    """The ids of the rows of ``model`` whose task has a message in the broker (one look at each
    of ``queues``, by default the task's own, for all of them), or None when the transport cannot
    be looked into."""
    app = task_of(model).app
    task = task_of(model).name
    queues = queues or {queue_of(model)}
    with connection or app.connection_for_read() as conn:
        transport = conn.transport.driver_type
        if transport in ("redis", "rediss"):
            messages = [m for queue in sorted(queues) for m in _redis_messages(conn.default_channel, queue,
                                                                                taken_within)]
        elif transport == "filesystem":
            messages = [m for queue in sorted(queues) for m in _folder_messages(conn.transport_options or {}, queue)]
        else:
            return None
        return {pk for pk in (_row_of(raw, task) for raw in messages) if pk is not None}


def _row_of(raw, task: str) -> int | None:
    """The row id a message (as the transport stores it) calls ``task`` on, else None."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if isinstance(message, list):  # Redis' unacked hash: [message, exchange, routing key]
        message = message[0] if message else {}
    headers = (message.get("headers") or {}) if isinstance(message, dict) else {}
    if headers.get("task") != task:
        return None
    try:
        args = ast.literal_eval(headers.get("argsrepr") or "()")
    except (ValueError, SyntaxError):
        return None
    if isinstance(args, (list, tuple)) and len(args) == 1 and isinstance(args[0], int):
        return args[0]
    return None


def _redis_messages(channel, queue: str, taken_within: float):
    client = channel.client
    # kombu keeps one list per priority step (the plain name for priority 0) and a hash of the
    # messages delivered to a worker but not acked yet (redelivered after the visibility timeout).
    for key in {channel._q_for_pri(queue, pri) for pri in channel.priority_steps}:
        yield from client.lrange(key, 0, -1)
    taken = dict(client.zrange(channel.unacked_index_key, 0, -1, withscores=True))
    for tag, message in client.hgetall(channel.unacked_key).items():
        # Taken by a worker longer ago than ``taken_within`` without the row being claimed: that
        # worker died with it (kombu would give it back only after the visibility timeout, an hour).
        when = taken.get(tag)
        if when is None or time.time() - when <= taken_within:
            yield message


def _folder_messages(options: dict, queue: str):
    for path in Path(options.get("data_folder_in") or ".").glob(f"*.{queue}.msg"):
        try:
            yield path.read_bytes()
        except OSError:  # taken by a worker while we looked
            continue


# --- re-enqueueing -------------------------------------------------------------------------------

def max_attempts() -> int:
    """How many times in all a job's message is sent (the first one included)."""
    return max(1, int(getattr(settings, "JOB_MAX_ATTEMPTS", 3)))


def can_retry(row) -> bool:
    return row.attempts + 1 < max_attempts()


def lost_reason(model, attempts: int, waited: int, row=None) -> str:
    return (f"Its message never reached a worker: sent {attempts + 1} times, each time lost (the last one "
            f"{waited} s ago). Check that the broker keeps its data (Redis with AOF) and that a worker "
            f"consumes the `{queue_of(model, row)}` queue, then launch it again.")


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


def revive_if_lost(model, row, *, timeout: float = 0, waiting: set[int] | None = ...) -> str:
    """One queued row: 'waiting' (its message is in the broker, or it is younger than ``timeout``),
    'requeued', 'failed' (out of attempts), 'unknown' (the broker could not be asked), or 'taken'
    (a worker claimed it meanwhile). ``waiting``: the ids ``rows_waiting`` found, when the caller
    looked already."""
    now = timezone.now()
    since = row.enqueued_at or row.created_at
    if timeout and since > now - timezone.timedelta(seconds=timeout):
        return "waiting"
    if waiting is ...:
        try:
            waiting = rows_waiting(model, taken_within=max(timeout, 1.0), **_queues_of(model, [row]))
        except Exception as exc:  # the broker is down: nothing can be sent now anyway
            log.warning("could not look for %s %s in the broker: %s", model.__name__, row.pk, exc)
            return "unknown"
    found = None if waiting is None else row.pk in waiting
    if found:
        return "waiting"
    if not can_retry(row):
        waited = int((now - since).total_seconds())
        failed = model.objects.filter(pk=row.pk, status=JobStatus.QUEUED, attempts=row.attempts).update(
            status=JobStatus.FAILED, finished_at=now, message="Failed: its message was lost",
            error=lost_reason(model, row.attempts, waited, row)) == 1
        return "failed" if failed else "taken"
    why = "its message was lost" if found is False else "no worker took it in time"
    message = f"Re-queued: {why} (attempt {row.attempts + 2} of {max_attempts()})"
    return "requeued" if requeue(model, row, message=message) else "taken"


def _queues_of(model, rows) -> dict:
    """``rows_waiting``'s ``queues`` for a kind whose rows go to different queues (else nothing)."""
    return {"queues": {queue_of(model, row) for row in rows}} if router_of(model) else {}


def sweep_queued(model, timeout: float) -> list[int]:
    """Re-enqueue (or fail, out of attempts) the rows queued for more than ``timeout`` seconds whose
    message is gone; return their ids."""
    cutoff = timezone.now() - timezone.timedelta(seconds=timeout)
    rows = (model.objects.filter(status=JobStatus.QUEUED)
            .annotate(since=Coalesce("enqueued_at", "created_at")).filter(since__lt=cutoff))
    rows = list(rows)
    if not rows:
        return []
    try:
        waiting = rows_waiting(model, taken_within=timeout, **_queues_of(model, rows))
    except Exception as exc:  # the broker is down: nothing can be sent now; the next sweep tries again
        log.warning("could not look into the broker for queued %s rows: %s", model.__name__, exc)
        return []
    return [row.pk for row in rows
            if revive_if_lost(model, row, timeout=timeout, waiting=waiting) in ("requeued", "failed")]
