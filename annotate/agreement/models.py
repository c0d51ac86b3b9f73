"""Overlap: N independent annotator versions of a trajectory, and the agreement computed on them.

The data model, in one paragraph. A trajectory's own row stays the canonical one: the row that
snapshots, pairs and exports read and that adjudication writes its result to. When a project turns
overlap on (``OverlapSettings``: N annotators, on every trajectory or a sampled share), each chosen
trajectory gets N **versions**: each version is an ordinary ``Trajectory`` row (the original's current
document written by the import's writer: turns, steps, labels, search index) linked by an ``OverlapVersion`` row to its original, its slot
(1..N) and its annotator. Because a version *is* a trajectory, it reuses the existing machinery
unchanged: its own revisions and version counter, its own edit conflicts, its own workflow
(draft -> submitted -> approved / rejected), its own editor page and step save. The link lives in
its own table rather than as a column on ``Trajectory`` so that the shared model is untouched.

Rules the rest of the code keeps (annotate.agreement.services):
- *Not extra items.* A version row belongs to the same project but is never a dataset item:
  ``services.canonical(qs)`` (NOT EXISTS a link with ``copy`` = the row) is what snapshots and bulk
  assignment select. The original of an overlapped item is not handed to
  annotators (its versions are); adjudication writes into it.
- *Blind.* The queue gives an annotator at most one version of an original, hides the others'
  versions from their queue list, and the editor, its history and the API refuse them (403); leads
  see all. (Annotators stay blind after submitting too: only adjudication shows versions side by side.)
- ``submitted_at`` records the first submission (the agreement uses submitted versions only).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class OverlapSettings(models.Model):
    """A project's overlap: how many annotators label each overlapped trajectory, and which ones."""

    project = models.OneToOneField("annotate.Project", on_delete=models.CASCADE, related_name="overlap")
    annotators = models.PositiveSmallIntegerField(
        default=1, help_text="Independent annotators per overlapped trajectory (1 turns overlap off).")
    share = models.FloatField(
        default=1.0, help_text="Share of the trajectories overlapped (1.0: all; 0.1: a 10% QA sample).")
    threshold = models.FloatField(
        default=0.67, help_text="Items whose agreement is below this go to adjudication.")
    seed = models.PositiveIntegerField(default=0, help_text="Seed of the sample (the same share picks the same items).")
    updated_at = models.DateTimeField(default=timezone.now)

    @property
    def enabled(self) -> bool:
        return self.annotators >= 2 and self.share > 0


class OverlapVersion(models.Model):
    """One annotator's independent version of an overlapped trajectory (``copy`` is a Trajectory row)."""

    original = models.ForeignKey("annotate.Trajectory", on_delete=models.CASCADE, related_name="overlap_copies")
    copy = models.OneToOneField("annotate.Trajectory", on_delete=models.CASCADE, related_name="overlap_version")
    slot = models.PositiveSmallIntegerField()
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="overlap_versions")
    assigned_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["original", "slot"], name="overlap_one_version_per_slot"),
            # Blind and independent: one annotator never holds two versions of the same original.
            models.UniqueConstraint(fields=["original", "annotator"], name="overlap_one_version_per_annotator"),
        ]
        indexes = [
            # The queue's claim: a project's unassigned versions, in order.
            models.Index(fields=["annotator", "original"], name="overlap_annotator_original"),
        ]


class AgreementReport(models.Model):
    """The project's agreement figures as last computed by the worker (the page reads the newest)."""

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATUS_CHOICES = [(QUEUED, "Queued"), (RUNNING, "Running"), (DONE, "Done"), (FAILED, "Failed")]

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="agreement_reports")
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=QUEUED)
    figures = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
