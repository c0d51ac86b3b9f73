"""Snapshots (immutable, content-hashed dataset selections + render settings) and training jobs.

Jobs of every kind (export, train, eval) share the ``JobFields`` mechanics of the ``jobs`` package:
the row is the single source of truth the UI reads; a task claims it with a conditional UPDATE;
progress and heartbeats are written to it; a periodic sweep re-enqueues queued rows whose message
was lost and fails (or, for exports, restarts) rows whose heartbeat went stale.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from jobs.rows import ACTIVE_STATUSES, JobFields, JobStatus  # noqa: F401  (JobStatus: known here to callers)
from training.paths import PathRefused, confine, is_inside, is_path_like
from training.roots import allowed_roots


class Snapshot(JobFields):
    """An immutable selection of trajectory revisions (or pairs) plus render settings.

    Created queued; the export task renders it, writes the files and the audit, and fills in
    ``content_hash``. Identical inputs give the same hash and byte-identical files.
    """

    KIND_CHOICES = [("sft", "SFT"), ("dpo", "DPO"), ("prompt", "Prompt (evaluation / GRPO)")]

    name = models.CharField(max_length=200, blank=True)
    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="snapshots")
    kind = models.CharField(max_length=10, choices=KIND_CHOICES, default="sft")
    filters = models.JSONField(default=dict, blank=True)
    render_settings = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, db_index=True)
    out_dir = models.CharField(max_length=1000, blank=True)
    item_count = models.PositiveIntegerField(default=0)
    sample_count = models.PositiveIntegerField(default=0)
    audit = models.JSONField(null=True, blank=True)
    audit_errors = models.PositiveIntegerField(default=0)
    override_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    override_reason = models.TextField(blank=True)
    override_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The project's snapshot list, newest first.
            models.Index(fields=["project", "created_at"], name="snapshot_project"),
        ]

    def __str__(self) -> str:
        return self.name or f"Snapshot {self.pk} ({self.kind})"

    @property
    def blocked(self) -> bool:
        """Audit errors block training unless a lead overrode them."""
        return self.audit_errors > 0 and self.override_by_id is None


class SnapshotItem(models.Model):
    """A trajectory revision pinned into a snapshot."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="items")
    trajectory = models.ForeignKey("annotate.Trajectory", on_delete=models.CASCADE, related_name="+")
    revision = models.ForeignKey("annotate.Revision", on_delete=models.CASCADE, related_name="+")

    class Meta:
        # Serves "the pinned revisions of snapshot S" in export order.
        constraints = [models.UniqueConstraint(fields=["snapshot", "trajectory"], name="unique_snapshot_item")]


class TrainingJob(JobFields):
    KIND_CHOICES = [("sft", "SFT"), ("dpo", "DPO"), ("grpo", "GRPO")]  # grpo: run by the rl app (training.job_kinds)

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="training_jobs")
    snapshot = models.ForeignKey(Snapshot, on_delete=models.PROTECT, related_name="training_jobs")
    kind = models.CharField(max_length=10, choices=KIND_CHOICES, default="sft")
    name = models.CharField(max_length=200, blank=True)
    base_model = models.CharField(max_length=1000)
    config = models.JSONField(default=dict, blank=True, help_text="training.runner.TrainSettings as a dict")
    output_dir = models.CharField(max_length=1000, blank=True)
    resumed_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resume_checkpoint = models.CharField(max_length=1000, blank=True,
                                         help_text="Checkpoint folder this run continues from")
    total_steps = models.PositiveIntegerField(default=0)
    current_step = models.PositiveIntegerField(default=0)
    log_tail = models.TextField(blank=True)
    worker_host = models.CharField(max_length=255, blank=True,
                                   help_text="Machine of the training process (the sweep kills orphans there only)")
    summary = models.JSONField(default=dict, blank=True,
                               help_text="Timing, last checkpoint and final results (loss, tokens/s)")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Runs page: a project's runs, newest first, filtered by status.
            models.Index(fields=["project", "status", "created_at"], name="trainjob_project_status"),
            # The stale-heartbeat sweep: running jobs by heartbeat.
            models.Index(fields=["status", "heartbeat_at"], name="trainjob_sweep"),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.get_kind_display()} run {self.pk}"

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the pace of this run's steps so far (None before two steps)."""
        first = self.summary.get("first_step")
        if not first or not self.total_steps or self.current_step <= first[0]:
            return None
        elapsed = (self.heartbeat_at or timezone.now()).timestamp() - first[1]
        per_step = elapsed / (self.current_step - first[0])
        return max(0.0, per_step * (self.total_steps - self.current_step))

    @property
    def eta_text(self) -> str:
        """"about 3 min 20 s left" (empty when unknown)."""
        eta = self.eta_seconds
        if eta is None:
            return ""
        s = int(round(eta))
        h, m, sec = s // 3600, s % 3600 // 60, s % 60
        left = f"{h} h {m:02d} min" if h else f"{m} min {sec:02d} s" if m else f"{sec} s"
        return f"about {left} left"


class TrainingDefaults(models.Model):
    """The launch form's last values in a project, per kind: the next launch starts from them."""

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=TrainingJob.KIND_CHOICES)
    values = models.JSONField(default=dict)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # Serves the launch form's lookup of (project, kind).
        constraints = [models.UniqueConstraint(fields=["project", "kind"], name="unique_training_defaults")]


class MetricPoint(models.Model):
    """One logged step of a training job: loss, eval loss, lr, grad norm, tokens/s, rewards..."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    epoch = models.FloatField(null=True, blank=True)
    values = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["step", "id"]
        indexes = [
            # The job page's charts: a job's points in step order (polled while it runs).
            models.Index(fields=["job", "step"], name="metric_job_step"),
        ]



class TrustedModel(models.Model):
    """An admin's grant: jobs loading this model folder (or one below it), or exactly this hub id,
    run with ``trust_remote_code`` (the model's own Python code). Nothing else ever does."""

    path = models.CharField(max_length=1000, unique=True,
                            help_text="A model folder inside the allowed roots (stored as its real path), or a hub id")
    note = models.TextField(blank=True, help_text="Why this model's code is trusted")
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    granted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return self.path

    def clean(self) -> None:
        self.path = self.path.strip()
        if is_path_like(self.path):
            try:
                self.path = confine(self.path, allowed_roots())
            except PathRefused as e:
                raise ValidationError({"path": e.message}) from None


def trust_remote_code_for(model: str) -> bool:
    """True only when an admin granted remote code to ``model``'s folder (or a folder above it),
    or to exactly this hub id, and a local folder still lies inside the allowed roots."""
    model = (model or "").strip()
    if not model:
        return False
    if not is_path_like(model):
        return TrustedModel.objects.filter(path=model).exists()
    real = os.path.realpath(model)
    if not is_inside(real, allowed_roots()):
        return False
    candidates = [real, *(str(p) for p in Path(real).parents)]
    return TrustedModel.objects.filter(path__in=candidates).exists()


from training.snapshots.models import *  # noqa: E402,F401,F403  (pinned pairs, render cache)
