"""The ``StepSuggestion`` row: one label a judge proposed for one step of a trajectory."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class StepSuggestion(models.Model):
    PENDING, ACCEPTED, DISMISSED = "pending", "accepted", "dismissed"
    STATUS_CHOICES = [(PENDING, "Pending"), (ACCEPTED, "Accepted"), (DISMISSED, "Dismissed")]

    trajectory = models.ForeignKey("annotate.Trajectory", on_delete=models.CASCADE, related_name="suggestions")
    # Where, 0-based, in the document of ``version`` (the judge read that version).
    turn_index = models.PositiveIntegerField()
    step_index = models.PositiveIntegerField()
    step_kind = models.CharField(max_length=20, help_text="The step's kind when judged (checked on accept)")
    version = models.PositiveIntegerField(help_text="The trajectory version the judge read")
    label = models.CharField(max_length=100)
    note = models.TextField(blank=True)
    # Who proposed it: the judge run (an evaluation row; annotate sits below evaluation, so an id
    # and a label, not a foreign key) and its model.
    judge_run_id = models.PositiveIntegerField()
    source = models.CharField(max_length=500, help_text="The judge's model, as its run page names it")
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=PENDING)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["turn_index", "step_index", "label"]
        indexes = [
            # The editor: a trajectory's pending suggestions.
            models.Index(fields=["trajectory", "status"], name="suggestion_trajectory_status"),
            # The judge run's page: its suggestions and their fate.
            models.Index(fields=["judge_run_id", "status"], name="suggestion_run_status"),
        ]
        constraints = [models.UniqueConstraint(fields=["judge_run_id", "trajectory", "turn_index", "step_index",
                                                       "label"], name="unique_suggestion_per_run")]

    def __str__(self) -> str:
        return f"{self.label} on turn {self.turn_index + 1}, step {self.step_index + 1} (judge run #{self.judge_run_id})"
