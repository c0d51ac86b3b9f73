"""``Adjudication``: a lead's decision over the versions of one trajectory, step by step. The
result is saved as the trajectory's document (a normal revision, ``version``); this row keeps
which versions were compared and, per step, which one the lead took (``provenance``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Adjudication(models.Model):
    trajectory = models.ForeignKey("annotate.Trajectory", on_delete=models.CASCADE, related_name="adjudications")
    version = models.PositiveIntegerField(help_text="The trajectory version the adjudicated document was saved as")
    sources = models.JSONField(default=list, help_text="The versions compared: [{name, ref}]")
    choices = models.JSONField(default=list, help_text="The lead's per-step choices, as given")
    provenance = models.JSONField(default=list, help_text="Per kept step: {turn, step, from, merged_labels}")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # "Is this trajectory adjudicated at its current version?" (snapshots, the queue).
            models.Index(fields=["trajectory", "version"], name="adjudication_trajectory"),
        ]

    def __str__(self) -> str:
        return f"Adjudication of #{self.trajectory_id} (v{self.version})"
