"""``JudgeRun``: a model as one more annotator. One model (a local folder, a training run's output
or an OpenAI-compatible endpoint) reads a batch of a project's trajectories and proposes step
labels and notes; the proposals are ``annotate.suggestions`` rows, never labels."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from evaluation.models import EvalRun
from jobs.rows import JobFields


class JudgeRun(JobFields):
    FOLDER, TRAINING_JOB, ENDPOINT = EvalRun.FOLDER, EvalRun.TRAINING_JOB, EvalRun.ENDPOINT

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="judge_runs")
    name = models.CharField(max_length=200, blank=True)
    model_source = models.CharField(max_length=20, choices=EvalRun.MODEL_SOURCES, default=EvalRun.FOLDER)
    model_path = models.CharField(max_length=1000, blank=True)
    training_job = models.ForeignKey("training.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="judge_runs")
    merge_adapter = models.BooleanField(default=False)
    endpoint_url = models.CharField(max_length=1000, blank=True)
    endpoint_model = models.CharField(max_length=300, blank=True)
    settings = models.JSONField(default=dict, blank=True, help_text="evaluation.generate.GenerationSettings")
    trajectory_ids = models.JSONField(default=list, help_text="The batch the judge reads, in order")
    total_items = models.PositiveIntegerField(default=0)
    done_items = models.PositiveIntegerField(default=0)
    suggestion_count = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True, help_text="What could not be read of the replies, by trajectory")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The judge runs list of a project, newest first.
            models.Index(fields=["project", "created_at"], name="judgerun_project"),
            # The stale-heartbeat sweep: running rows by heartbeat.
            models.Index(fields=["status", "heartbeat_at"], name="judgerun_sweep"),
        ]

    def __str__(self) -> str:
        return self.name or f"Judge run {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:judge-detail", args=[self.pk])

    model_label = EvalRun.model_label
