"""The worker's supervision of a claimed row's runner subprocess.

``run_supervised`` starts the runner (``jobs.processes``, ``jobs.runner_io``), ingests its events
through a ``Monitor`` while heartbeating and honouring a cancel, then ``conclude``: succeeded,
cancelled, or failed with the reason. A ``Monitor`` subclass says what the events mean and what
the row gets (``training.jobs.RunMonitor``, ``evaluation.jobs.EvalMonitor``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.core.management.base import CommandError

from jobs.processes import ExitWatch, describe_exit, last_lines, start_process, stop_process
from jobs.rows import JobStatus, beat, finish
from jobs.runner_io import WORKER_PID_ENV

HEARTBEAT_EVERY = 2.0  # seconds between heartbeats while a subprocess runs


class Monitor:
    """One claimed row and its runner's output: what the supervision loop reads and writes.

    A subclass sets ``model``, ``process``, ``noun`` and ``log_name``; it reads the runner's
    files in ``ingest`` (setting ``ended`` on the ``end`` event and ``error`` on an ``error``
    event) and says what the row gets in ``fields`` and the verdict methods.
    """

    model: type  # the JobFields model
    process: str  # in messages: "stopping the training process"
    noun: str  # in messages: "The job is no longer running on this worker"
    log_name: str  # the runner's stdout and stderr, in the run folder

    def __init__(self, row, echo: Callable[[str], None] | None = None):
        self.pk = row.pk
        self.run_dir = Path(row.output_dir)
        self.echo = echo
        self.ended = False
        self.error = ""

    @property
    def log_path(self) -> Path:
        return self.run_dir / self.log_name

    def ingest(self) -> int | None:
        """Read the runner's new output. A count above 0 sends the news to the row at once; 0 or
        None leaves it for the next heartbeat."""
        raise NotImplementedError

    def fields(self) -> dict:
        """The row's progress fields (each heartbeat writes them)."""
        raise NotImplementedError

    def final_fields(self) -> dict:
        """The row's fields on any verdict."""
        return self.fields()

    def success_fields(self) -> dict:
        raise NotImplementedError

    def cancelled_message(self) -> str:
        raise NotImplementedError

    def failed_message(self) -> str:
        raise NotImplementedError

    def failure_error(self, returncode: int | None) -> str:
        """The runner's own error, else what its exit means (with its log's last lines after an exit code)."""
        error = self.error or describe_exit(returncode if returncode is not None else -9, self.process)
        if not self.error and (returncode or 0) > 0:
            error += " The last lines of its log:\n" + last_lines(self.log_path, 15)
        return error


def run_supervised(monitor: Monitor, cmd: list[str], *, poll: float) -> str:
    """Start ``cmd`` for ``monitor``'s claimed row, supervise it to the end; return the final status."""
    model, pk = monitor.model, monitor.pk
    proc = start_process(cmd, cwd=Path(settings.BASE_DIR), log_path=monitor.log_path,
                         env={"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
                              WORKER_PID_ENV: str(os.getpid())})
    model.objects.filter(pk=pk).update(worker_pid=proc.pid)
    try:
        stopped_for = supervise(proc, monitor, poll)
    except BaseException:  # Ctrl-C in `manage.py train` / `evaluate`, a Celery hard time limit...
        stop_process(proc)
        monitor.ingest()
        conclude(monitor, proc.returncode, "cancel")
        raise
    monitor.ingest()
    return conclude(monitor, proc.returncode, stopped_for)


def supervise(proc: subprocess.Popen, monitor: Monitor, poll: float) -> str:
    """Wait for the process, ingesting its output every ``poll`` seconds and heartbeating (at once
    on news, else every ``HEARTBEAT_EVERY`` s); '' when it exited by itself, 'cancel' or 'lost'
    when this worker stopped it."""
    model, pk = monitor.model, monitor.pk
    last_beat = 0.0
    exited = ExitWatch(proc)
    while True:
        if exited.wait(poll):
            return ""
        fresh = monitor.ingest()
        if not fresh and time.monotonic() - last_beat < HEARTBEAT_EVERY:
            continue
        last_beat = time.monotonic()
        if not beat(model, pk, **monitor.fields()):
            stopped_for = "lost"  # swept, or finished by someone else: the row has the verdict
        elif model.objects.filter(pk=pk, cancel_requested=True).exists():
            stopped_for = "cancel"
        else:
            continue
        if monitor.echo:
            monitor.echo(f"Cancelling: stopping the {monitor.process}" if stopped_for == "cancel" else
                         f"The {monitor.noun} is no longer running on this worker; stopping the {monitor.process}")
        stop_process(proc)
        return stopped_for


def conclude(monitor: Monitor, returncode: int | None, stopped_for: str) -> str:
    """The row's verdict once its process is gone: succeeded (exit 0 after the ``end`` event),
    cancelled, failed with the reason, or, when the row was lost, whatever it already says."""
    fields = monitor.final_fields()
    if returncode == 0 and monitor.ended:
        fields.update(monitor.success_fields())
        status = JobStatus.SUCCEEDED
    elif stopped_for == "cancel":
        fields.update(message=monitor.cancelled_message())
        status = JobStatus.CANCELLED
    elif stopped_for == "lost":
        return monitor.model.objects.values_list("status", flat=True).get(pk=monitor.pk)
    else:
        fields.update(error=monitor.failure_error(returncode), message=monitor.failed_message())
        status = JobStatus.FAILED
    finish(monitor.model, monitor.pk, status, **fields)
    return status


def run_in_command(run_job: Callable[..., str], row, label: str, echo: Callable[[str], None]) -> None:
    """``manage.py train`` / ``evaluate``: run the launched ``row`` in this process; a
    ``CommandError`` unless it succeeds (``label``: "Run #3")."""
    try:
        status = run_job(row.pk, echo=echo)
    except KeyboardInterrupt:  # the run was stopped and marked cancelled on the way out
        raise CommandError(f"{label} cancelled.") from None
    row.refresh_from_db()
    if status != JobStatus.SUCCEEDED:
        raise CommandError(f"{label} {status}: {row.error or row.message}")
