"""The judge launch form: which model, and which trajectories (by status, the first N)."""

from __future__ import annotations

from django import forms

from annotate.models import Trajectory
from evaluation.forms import TrainingJobChoiceField
from evaluation.judge import MAX_BATCH
from evaluation.models import EvalRun
from training.models import JobStatus


class JudgeLaunchForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="Blank: judge · model.")
    model_source = forms.ChoiceField(choices=EvalRun.MODEL_SOURCES, widget=forms.RadioSelect, label="Judge model",
                                     initial=EvalRun.FOLDER)
    model_path = forms.CharField(required=False, max_length=1000, label="Model folder")
    training_job = TrainingJobChoiceField(queryset=None, required=False, label="Training run",
                                          empty_label="Choose a finished training run")
    endpoint_url = forms.CharField(required=False, max_length=1000, label="Endpoint URL",
                                   help_text="On the admins' endpoint allowlist: http://host:8000/v1")
    endpoint_model = forms.CharField(required=False, max_length=300, label="Endpoint model name")
    status = forms.ChoiceField(choices=[("", "any status")] + list(Trajectory.STATUS_CHOICES), required=False,
                               label="Trajectories", help_text="Judge the project's trajectories with this status")
    limit = forms.IntegerField(min_value=1, max_value=MAX_BATCH, initial=100, help_text="the first N of them")
    max_new_tokens = forms.IntegerField(min_value=16, max_value=8192, initial=512, label="Max new tokens")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["training_job"].queryset = project.training_jobs.filter(status=JobStatus.SUCCEEDED)

    def trajectory_ids(self) -> list[int]:
        rows = self.project.trajectories.order_by("pk")
        if self.cleaned_data["status"]:
            rows = rows.filter(status=self.cleaned_data["status"])
        return list(rows.values_list("pk", flat=True)[:self.cleaned_data["limit"]])
