"""A job row: its fields (``JobFields``, abstract), its status, and the conditional UPDATEs that
move it. The row is the single source of truth the UI reads.

- ``claim``: a worker takes a queued row with a conditional UPDATE; a duplicate delivery gets 0
  rows and does nothing (which is what makes ``acks_late`` safe).
- ``beat``: progress and heartbeat, written only while the row is still running; 0 rows means the
  job was swept or finished elsewhere and the worker must stop.
- ``finish``: the final status, again only from running (never over the sweep's verdict).
- ``request_cancel``: a queued row is cancelled at once; a running one is flagged and its worker
  kills the subprocess's process group.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobFields(models.Model):
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    progress = models.FloatField(default=0.0, help_text="0..1")
    message = models.CharField(max_length=500, blank=True, help_text="What the job is doing now")
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker_pid = models.IntegerField(null=True, blank=True, help_text="Process group of the running subprocess")
    # When its current broker message was sent, and how many times the sweep sent it again (a lost
    # message, an export restarted after its worker died); see ``jobs.queue``.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times the sweep re-enqueued it")

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_finished(self) -> bool:
        return not self.is_active


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


def cancel_message(job, outcome: str) -> str:
    """What the page says after ``request_cancel`` gave ``outcome`` for ``job``."""
    return {"cancelled": f"Cancelled {job} before it started.", "cancelling": f"Stopping {job}…",
            "finished": f"{job} had already finished."}[outcome]


def fail_before_start(model, pk: int, exc: Exception, message: str) -> str:
    """A claimed row whose run could not be prepared (a broken row, an unwritable data dir): say so on it."""
    finish(model, pk, JobStatus.FAILED, error=f"Could not prepare the run: {type(exc).__name__}: {exc}",
           message=message)
    return JobStatus.FAILED
