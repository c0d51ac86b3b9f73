"""Job mechanics for any model with ``JobFields`` (snapshot exports, training jobs, evaluation
runs), and the worker's supervision of a runner subprocess. The row is the single source of truth
the UI reads.

- ``claim``: a worker takes a queued row with a conditional UPDATE; a duplicate delivery gets 0
  rows and does nothing (which is what makes ``acks_late`` safe).
- ``beat``: progress and heartbeat, written only while the row is still running; 0 rows means the
  job was swept or finished elsewhere and the worker must stop.
- ``finish``: the final status, again only from running (never over the sweep's verdict).
- ``request_cancel``: a queued row is cancelled at once; a running one is flagged and its worker
  kills the subprocess's process group.
- ``sweep_stale``: running rows whose heartbeat is older than the timeout are failed with the
  reason, or queued again where starting over is safe (exports); a periodic Celery task runs it
  with ``training.job_queue.sweep_queued`` (``JOB_HEARTBEAT_TIMEOUT``, ``JOB_QUEUED_TIMEOUT``).
- ``start_process`` / ``stop_process``: a subprocess in its own session, so one ``killpg`` stops it
  and anything it started.
- ``run_supervised``: start a claimed row's runner (``training.runner_io``), ingest its events
  through a ``Monitor`` while heartbeating and honouring a cancel, then ``conclude``: succeeded,
  cancelled, or failed with the reason. A ``Monitor`` subclass says what the events mean and what
  the row gets (``training.jobs.RunMonitor``, ``evaluation.jobs.EvalMonitor``).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

from django.conf import settings
from django.core.management.base import CommandError
from django.db.models import Q
from django.utils import timezone

from training import job_queue
from training.models import JobStatus

log = logging.getLogger(__name__)
HOST = socket.gethostname()
HEARTBEAT_EVERY = 2.0  # seconds between heartbeats while a subprocess runs
LOG_TAIL_LINES = 40


# --- the row -----------------------------------------------------------------------------------

def claim(model, pk: int, **fields) -> bool:
    """Take a queued row (True), or learn that another delivery / a cancel got there first (False)."""
    now = timezone.now()
    return model.objects.filter(pk=pk, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, **fields) == 1


def _running(model, pk: int, claimed_at=None):
    rows = model.objects.filter(pk=pk, status=JobStatus.RUNNING)
    # A row the sweep restarted is running again under a new claim: the old worker's writes
    # (a worker that hung, then woke) must not land on it.
    return rows if claimed_at is None else rows.filter(started_at=claimed_at)


def beat(model, pk: int, *, claimed_at=None, **fields) -> bool:
    """Heartbeat (+ progress fields) while running; False when the row is no longer running (or,
    given ``claimed_at``, no longer running under that claim)."""
    return _running(model, pk, claimed_at).update(heartbeat_at=timezone.now(), **fields) == 1


def finish(model, pk: int, status: str, *, claimed_at=None, **fields) -> bool:
    """Set the final status of a running row (a row the sweep already failed stays failed)."""
    return _running(model, pk, claimed_at).update(status=status, finished_at=timezone.now(), **fields) == 1


def request_cancel(job) -> str:
    """'cancelled' (it had not started), 'cancelling' (its worker will stop it) or 'finished'."""
    model = type(job)
    if model.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, cancel_requested=True, finished_at=timezone.now(),
            message="Cancelled before it started") == 1:
        return "cancelled"
    if model.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            cancel_requested=True, message="Cancelling…") == 1:
        return "cancelling"
    return "finished"


def _is_our_process_group(pgid: int, marker: str) -> bool:
    """Guard against a recycled pid: the group leader's command line must name ``marker``."""
    try:
        return marker in Path(f"/proc/{pgid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def sweep_stale(model, timeout: float, *, marker: str = "training.runner", requeue: bool = False) -> list[int]:
    """Fail running rows whose heartbeat is older than ``timeout`` seconds; return their ids.

    A row whose cancel was requested ends cancelled instead. With ``requeue`` (work that is safe
    to start over, such as an export), the row is queued again while it has attempts left
    (``training.job_queue``). Where the dead worker ran on this
    machine, a runner process it left behind (its command line names ``marker``) is killed too
    (it normally stops on its own when its parent dies; see ``training.runner_io.watch_parent``).
    """
    now = timezone.now()
    cutoff = now - timezone.timedelta(seconds=timeout)
    stale = model.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
    swept = []
    for row in stale:
        seen = row.heartbeat_at or row.started_at
        silent = int((now - seen).total_seconds()) if seen else int(timeout)
        if requeue and not row.cancel_requested and job_queue.can_retry(row):
            again = (f"Restarting: its worker stopped responding (no heartbeat for {silent} s); "
                     f"attempt {row.attempts + 2} of {job_queue.max_attempts()}")
            if job_queue.requeue(model, row, from_status=JobStatus.RUNNING, message=again,
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
        if row.worker_pid and host == HOST and _is_our_process_group(row.worker_pid, marker):
            stop_process_group(row.worker_pid, grace=5)
    return swept


# --- the process -------------------------------------------------------------------------------

def start_process(cmd: list[str], *, cwd: Path, log_path: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group), stdout and stderr into ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        return subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, start_new_session=True)


def stop_process_group(pgid: int, grace: float = 10.0) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    stop_process_group(proc.pid, grace)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


class FileTail:
    """New complete lines of a growing file, from where the last read stopped."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0

    def read_lines(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []  # a line still being written
        self.offset += end + 1
        return data[:end].decode("utf-8", errors="replace").splitlines()


def last_lines(path: Path, n: int = LOG_TAIL_LINES, max_bytes: int = 16384) -> str:
    """The last ``n`` lines of a text file (empty when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-n:])


def describe_exit(returncode: int, process: str = "training process") -> str:
    """What a subprocess's exit code means, for the job's error.

    >>> describe_exit(3, "evaluation process")
    'The evaluation process exited with code 3.'
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = " (out of memory is the usual cause when nobody sent it)" if -returncode == signal.SIGKILL else ""
        return f"The {process} was killed by {name}{why}."
    if returncode == 75:
        return f"The {process} stopped because the worker that started it went away."
    return f"The {process} exited with code {returncode}."


# --- supervising a runner ----------------------------------------------------------------------

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


def fail_before_start(model, pk: int, exc: Exception, message: str) -> str:
    """A claimed row whose run could not be prepared (a broken row, an unwritable data dir): say so on it."""
    finish(model, pk, JobStatus.FAILED, error=f"Could not prepare the run: {type(exc).__name__}: {exc}",
           message=message)
    return JobStatus.FAILED


def run_supervised(monitor: Monitor, cmd: list[str], *, poll: float) -> str:
    """Start ``cmd`` for ``monitor``'s claimed row, supervise it to the end; return the final status."""
    model, pk = monitor.model, monitor.pk
    proc = start_process(cmd, cwd=Path(settings.BASE_DIR), log_path=monitor.log_path,
                         env={"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"})
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


class ExitWatch:
    """Wait up to ``timeout`` seconds for a child process to exit, asleep in the kernel.

    ``Popen.wait(timeout=...)`` polls ``waitpid`` every few milliseconds (up to 50 ms): some 25
    wake-ups a second, each taking a core from the training threads for a moment. A pidfd (Linux)
    wakes us once, when the process exits or the timeout passes; elsewhere we sleep ``timeout``.
    """

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        try:
            self.fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # not Linux, or the process is already gone
            self.fd = None

    def wait(self, timeout: float) -> bool:
        if self.proc.poll() is not None:
            self.close()
            return True
        if self.fd is not None:
            select.select([self.fd], [], [], timeout)
        else:
            time.sleep(timeout)
        if self.proc.poll() is None:
            return False
        self.close()
        return True

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self):
        self.close()


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
