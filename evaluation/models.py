"""Eval sets, evaluation runs and their per-item results.

- ``EvalSet``: a frozen list of items (``EvalSetItem``: the prompt messages, tools and the gold
  reference, ``evaluation.items.EvalItem`` as JSON), taken from a prompt snapshot's split, from
  the project's trajectories (imported benchmarks whose ``meta.reference`` holds the gold), or
  from an uploaded file of questions with a marked correct candidate.
- ``EvalRun``: one model on one eval set, a job with the same mechanics as training
  (``jobs.rows.JobFields``: claimed, heartbeated, cancelled, swept). The model is a local
  folder, a training job's output (a LoRA adapter loaded with peft, or merged), or an
  OpenAI-compatible endpoint.
- ``EvalItemResult``: what the model did with one item: the rendered prompt, the raw output, the
  parsed calls, the score and error labels, the decision; and what became of it (sent to
  annotation, made into a pair).
- ``AllowedEndpoint``: the admin-managed allowlist of endpoint hosts an evaluation may call
  (``evaluation.outbound``: the rules, the address checks and the pinned connection).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone

from evaluation.outbound import AllowRule, parse_rule
from jobs.rows import JobFields
from studio.fields import OrderedJSONField


class EvalSet(models.Model):
    SNAPSHOT, TRAJECTORIES, CANDIDATES = "snapshot", "trajectories", "candidates"
    SOURCE_CHOICES = [(SNAPSHOT, "Prompt snapshot split"), (TRAJECTORIES, "Project trajectories (benchmark gold)"),
                      (CANDIDATES, "Uploaded candidates with the correct one marked")]

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="eval_sets")
    name = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=SOURCE_CHOICES)
    snapshot = models.ForeignKey("training.Snapshot", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="eval_sets")
    split = models.CharField(max_length=10, blank=True)
    filters = models.JSONField(default=dict, blank=True, help_text="The trajectory selection, or the uploaded file")
    item_count = models.PositiveIntegerField(default=0)
    case_type_counts = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The launch form's choice list and the eval sets page: a project's sets, newest first.
            models.Index(fields=["project", "created_at"], name="evalset_project"),
        ]

    def __str__(self) -> str:
        return self.name or f"Eval set {self.pk}"


class EvalSetItem(models.Model):
    eval_set = models.ForeignKey(EvalSet, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    item_id = models.CharField(max_length=400)
    document = OrderedJSONField(help_text="evaluation.items.EvalItem as a dict")
    trajectory = models.ForeignKey("annotate.Trajectory", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["position"]
        # Serves "the items of set S in order" (the run's items file, limited to the first N).
        constraints = [models.UniqueConstraint(fields=["eval_set", "position"], name="unique_evalset_item")]


class EvalRun(JobFields):
    FOLDER, TRAINING_JOB, ENDPOINT = "folder", "training_job", "endpoint"
    MODEL_SOURCES = [(FOLDER, "Model folder"), (TRAINING_JOB, "Training run output"),
                     (ENDPOINT, "OpenAI-compatible endpoint")]

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="eval_runs")
    eval_set = models.ForeignKey(EvalSet, on_delete=models.PROTECT, related_name="runs")
    name = models.CharField(max_length=200, blank=True)
    model_source = models.CharField(max_length=20, choices=MODEL_SOURCES, default=FOLDER)
    model_path = models.CharField(max_length=1000, blank=True, help_text="Model folder (or an adapter's base model)")
    training_job = models.ForeignKey("training.TrainingJob", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="eval_runs")
    merge_adapter = models.BooleanField(default=False, help_text="Merge a LoRA adapter into the base weights")
    endpoint_url = models.CharField(max_length=1000, blank=True)
    endpoint_model = models.CharField(max_length=300, blank=True)
    settings = models.JSONField(default=dict, blank=True, help_text="evaluation.generate.GenerationSettings")
    limit = models.PositiveIntegerField(default=0, help_text="Evaluate the first N items (0: all)")
    output_dir = models.CharField(max_length=1000, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    total_items = models.PositiveIntegerField(default=0)
    done_items = models.PositiveIntegerField(default=0)
    failed_items = models.PositiveIntegerField(default=0, help_text="Requests that failed (not scored)")
    summary = models.JSONField(default=dict, blank=True, help_text="Metrics, breakdowns and timing at the end")
    checker_versions = models.JSONField(default=dict, blank=True, help_text=(
        "The checkers that scored the run: {'studio-scorer': version, 'bfcl-eval': release where BFCL items were scored}"))
    log_tail = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Evaluations page: a project's runs, newest first, filtered by status.
            models.Index(fields=["project", "status", "created_at"], name="evalrun_project_status"),
            # The stale-heartbeat sweep: running runs by heartbeat.
            models.Index(fields=["status", "heartbeat_at"], name="evalrun_sweep"),
        ]

    def __str__(self) -> str:
        return self.name or f"Evaluation {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:run-detail", args=[self.pk])

    @property
    def model_label(self) -> str:
        if self.model_source == self.ENDPOINT:
            return f"{self.endpoint_model or 'model'} @ {self.endpoint_url}"
        if self.model_source == self.TRAINING_JOB:
            return f"run #{self.training_job_id} output" + (" (merged)" if self.merge_adapter else "")
        return self.model_path


class EvalItemResult(models.Model):
    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    set_item = models.ForeignKey(EvalSetItem, null=True, on_delete=models.SET_NULL, related_name="+")
    position = models.PositiveIntegerField()
    item_id = models.CharField(max_length=400)
    case_types = models.JSONField(default=list)
    prompt_text = models.TextField(blank=True, help_text="What the model saw: the rendered chat template")
    raw_output = models.TextField(blank=True)
    parsed = models.JSONField(default=dict)
    score = models.JSONField(null=True, blank=True, help_text="evaluation.scoring.ItemScore; null: not scored")
    labels = models.JSONField(default=list)
    decision = models.CharField(max_length=10, blank=True)
    gold_decision = models.CharField(max_length=10, blank=True)
    correct = models.BooleanField(null=True)
    error = models.TextField(blank=True, help_text="The request failed (the environment, not the model)")
    episode = OrderedJSONField(null=True, blank=True, help_text="The replayed continuation, when there was one")
    seconds = models.FloatField(default=0.0)
    new_tokens = models.PositiveIntegerField(default=0)
    sent_trajectory = models.ForeignKey("annotate.Trajectory", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    pair = models.ForeignKey("annotate.Pair", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position"]
        constraints = [
            # Serves the items table in order, and makes ingesting a results line twice impossible.
            models.UniqueConstraint(fields=["run", "position"], name="unique_eval_result"),
        ]
        indexes = [
            # The items table filtered to failures ("correct = false") of a run.
            models.Index(fields=["run", "correct", "position"], name="evalresult_run_correct"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} in {self.run}"

    def get_absolute_url(self) -> str:
        return reverse("evaluation:item-detail", args=[self.run_id, self.position])

    @property
    def failed(self) -> bool:
        return self.correct is False


class AllowedEndpoint(models.Model):
    """One entry of the endpoint allowlist, kept by admins (Django admin). An evaluation endpoint's
    URL must match an entry; its host must resolve to public addresses unless the entry allows
    private ones (an exact host only: a vLLM server on the internal network or on loopback)."""

    pattern = models.CharField(max_length=300, unique=True,
                               help_text="host, host:port, *.example.com or *.example.com:443 "
                                         "(an IPv6 address in brackets: [fd00::5]:8000)")
    allow_private = models.BooleanField(
        default=False, help_text="This exact host may resolve to loopback, private or link-local addresses. "
                                 "Cloud metadata, multicast and unspecified addresses stay refused.")
    note = models.CharField(max_length=300, blank=True, help_text="What the server is, who runs it")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 editable=False, related_name="+")
    added_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["pattern"]

    def __str__(self) -> str:
        return self.pattern + (" (private addresses allowed)" if self.allow_private else "")

    def clean(self) -> None:
        try:
            self.pattern = str(parse_rule(self.pattern, private=self.allow_private))  # one spelling
        except ValueError as exc:
            raise ValidationError({"pattern": str(exc)}) from None

    def rule(self) -> AllowRule:
        """The entry as ``evaluation.outbound`` checks it (ValueError for a row written past ``clean``)."""
        return parse_rule(self.pattern, private=self.allow_private)
from evaluation.judge_models import JudgeRun  # noqa: E402,F401  (a model as one more annotator)
