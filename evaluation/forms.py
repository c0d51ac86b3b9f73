"""The evaluation launch form and the eval-set form.

Types are parsed by the form fields; the rules about the values live in
``evaluation.generate.GenerationSettings.errors`` and ``evaluation.jobs.launch_errors``, which
the API and ``manage.py evaluate`` use too.
"""

from __future__ import annotations

from django import forms

from annotate.trajectory import CASE_TYPE_NAMES
from evaluation.generate import DEVICES, GenerationSettings
from evaluation.eval_sets import SPLITS
from evaluation.jobs import launch_errors
from evaluation.models import EvalRun, EvalSet
from jobs.rows import JobStatus
from studio.forms import add_problems

SETTINGS_FIELDS = ("max_new_tokens", "batch_size", "temperature", "max_steps", "concurrency", "timeout", "retries",
                   "device", "response_parser")
PARSER_CHOICES = [("auto", "The family's response template (TRL's), then the common formats"),
                  ("fallbacks", "The common formats only (<tool_call> JSON, bare JSON, Python calls)")]


class EvalSetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, es: EvalSet) -> str:
        return f"#{es.pk} {es.name} · {es.item_count} items"


class TrainingJobChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, job) -> str:
        method = "LoRA adapter" if (job.config or {}).get("method") == "lora" else "full model"
        return f"#{job.pk} {job.name} · {job.get_kind_display()} · {method}"


class LaunchForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="Blank: model · eval set.")
    eval_set = EvalSetChoiceField(queryset=EvalSet.objects.none(), empty_label="Choose an eval set")
    model_source = forms.ChoiceField(choices=EvalRun.MODEL_SOURCES, widget=forms.RadioSelect, label="Model")
    model_path = forms.CharField(required=False, max_length=1000, label="Model folder",
                                 help_text="A local model folder (or a hub id the workers have cached).")
    training_job = TrainingJobChoiceField(queryset=None, required=False, label="Training run",
                                          empty_label="Choose a finished training run")
    merge_adapter = forms.BooleanField(required=False, label="Merge a LoRA adapter into the base weights first",
                                       help_text="Faster generation; the same outputs up to rounding.")
    endpoint_url = forms.CharField(required=False, max_length=1000, label="Endpoint URL",
                                   help_text="An OpenAI-compatible server (vLLM, SGLang, TGI) on the admins' "
                                             "endpoint allowlist: http://host:8000/v1")
    endpoint_model = forms.CharField(required=False, max_length=300, label="Endpoint model name")
    limit = forms.IntegerField(required=False, min_value=0, label="Items",
                               help_text="Evaluate the first N items (blank: all).")
    max_new_tokens = forms.IntegerField(label="Max new tokens")
    batch_size = forms.IntegerField(label="Batch size", help_text="Local models: prompts per forward pass.")
    temperature = forms.FloatField(help_text="0: greedy.")
    max_steps = forms.IntegerField(label="Replay steps", help_text="Model turns per item, feeding back the gold "
                                                                  "tool results (1: no replay).")
    concurrency = forms.IntegerField(help_text="Endpoints: requests in flight.")
    timeout = forms.FloatField(label="Timeout (s)", help_text="Endpoints: per request.")
    retries = forms.IntegerField(help_text="Endpoints: further tries after a failed request.")
    device = forms.ChoiceField(choices=[(d, d) for d in DEVICES])
    response_parser = forms.ChoiceField(label="Parsing", choices=PARSER_CHOICES)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["eval_set"].queryset = project.eval_sets.all()
        self.fields["training_job"].queryset = project.training_jobs.filter(status=JobStatus.SUCCEEDED)
        self.gen: GenerationSettings | None = None

    @classmethod
    def initial_for(cls, project, model_path: str = "", *, last: EvalRun | None = None) -> dict:
        """The defaults, then (given ``last``, the project's latest evaluation) its choices."""
        values = GenerationSettings().to_dict()
        values.update(model_source=EvalRun.FOLDER, model_path=model_path)
        if last is not None:  # the next launch starts from the last one's choices
            values.update({k: v for k, v in (last.settings or {}).items() if k in SETTINGS_FIELDS})
            values.update(model_source=last.model_source, model_path=last.model_path or model_path,
                          endpoint_url=last.endpoint_url, endpoint_model=last.endpoint_model,
                          eval_set=last.eval_set_id)
            if last.model_source == EvalRun.TRAINING_JOB:
                # Never "a training run's output" with no run chosen (the first submit would fail):
                # the last run's model if it is still there to evaluate, else a model folder.
                job = last.training_job
                if job is not None and job.status == JobStatus.SUCCEEDED:
                    values["training_job"] = job.pk
                else:
                    values["model_source"] = EvalRun.FOLDER
        return values

    def clean(self):
        data = super().clean()
        given = {k: data[k] for k in SETTINGS_FIELDS if data.get(k) not in (None, "")}
        try:
            self.gen = GenerationSettings.from_dict(given)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if "eval_set" in self.errors:
            return data
        problems = launch_errors(self.project, data.get("eval_set"), data.get("model_source") or "",
                                 model_path=data.get("model_path") or "", training_job=data.get("training_job"),
                                 endpoint_url=data.get("endpoint_url") or "", gen=self.gen)
        add_problems(self, problems)
        return data

    def model_fields(self):
        return [self[n] for n in ("model_path", "training_job", "merge_adapter", "endpoint_url", "endpoint_model")]

    def generation_fields(self):
        return [self[n] for n in ("limit", "max_new_tokens", "batch_size", "temperature", "max_steps", "device",
                                  "response_parser")]

    def endpoint_fields(self):
        return [self[n] for n in ("concurrency", "timeout", "retries")]


SPLIT_CHOICES = [(s, s) for s in SPLITS]


class EvalSetForm(forms.Form):
    source = forms.ChoiceField(choices=EvalSet.SOURCE_CHOICES, widget=forms.RadioSelect)
    name = forms.CharField(required=False, max_length=200, help_text="Blank: named after its source.")
    snapshot = forms.ModelChoiceField(queryset=None, required=False, empty_label="Choose a prompt snapshot",
                                      label="Prompt snapshot")
    split = forms.ChoiceField(choices=SPLIT_CHOICES, required=False, label="Split")
    f_split = forms.ChoiceField(choices=[("", "any")] + SPLIT_CHOICES, required=False, label="Trajectory split")
    f_source = forms.CharField(required=False, max_length=300, label="Trajectory source",
                               help_text="e.g. the importer's source name")
    f_tag = forms.CharField(required=False, max_length=200, label="Tag", help_text="e.g. bfcl:simple_python")
    f_case_type = forms.ChoiceField(choices=[("", "any")] + list(CASE_TYPE_NAMES.items()), required=False,
                                    label="Case type")
    file = forms.FileField(required=False, label="Candidates file (JSON or JSON Lines)",
                           help_text="One question per record with its candidates and the correct one marked.")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["snapshot"].queryset = project.snapshots.filter(kind="prompt", status=JobStatus.SUCCEEDED)
        if not self.is_bound:
            if newest := self.fields["snapshot"].queryset.first():
                self.initial.setdefault("snapshot", newest.pk)  # the likeliest choice: the newest prompt snapshot
            else:  # no prompt snapshot to choose: the defaults must still make a set (the project's trajectories)
                self.initial["source"] = EvalSet.TRAJECTORIES

    def filters(self) -> dict:
        d = self.cleaned_data
        return {k: d.get(f"f_{k}") for k in ("split", "source", "tag", "case_type") if d.get(f"f_{k}")}
