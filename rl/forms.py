"""The GRPO launch form. Types are parsed by the fields; every rule about the values lives in
``rl.runner.settings_errors`` and ``rl.launch.grpo_errors`` (the API and ``manage.py train`` use
them too), and every problem is shown at once."""

from __future__ import annotations

from django import forms
from django.conf import settings

from rl import runner
from rl.launch import allowed_classes, grpo_errors, start_of
from studio.forms import add_problems
from training.forms import DEVICE_CHOICES, DEVICE_HELP, SnapshotChoiceField
from training.jobs import remembered_launch
from training.models import JobStatus, TrainingJob

ENVIRONMENT_KINDS = [("python", "A Python class (its public methods are the tools)"),
                     ("bfcl", "BFCL's multi-turn classes"), ("replay", "Replay of the gold trajectories' results")]
SETTINGS_FIELDS = ("num_generations", "prompts_per_step", "max_tool_calling_iterations", "max_completion_length",
                   "temperature", "beta", "learning_rate", "max_steps", "rollout_every", "save_steps",
                   "logging_steps", "seed", "device")
# The form field of each settings problem that is not named after a field.
PROBLEM_FIELDS = {"environment": "environment_kind", "limits": None, "start_adapter": "from_run"}


def weight_field(name: str) -> str:
    return f"weight_{name}"


class RunChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, job: TrainingJob) -> str:
        return f"#{job.pk} {job} ({job.get_kind_display()})"


class GRPOLaunchForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="Blank: GRPO · model · snapshot.")
    snapshot = SnapshotChoiceField(queryset=None, empty_label="Choose a finished prompt snapshot",
                                   label="Prompt snapshot")
    from_run = RunChoiceField(queryset=None, required=False, label="Start from a finished run",
                              empty_label="No: start from the base model below",
                              help_text="A finished SFT or DPO run of this project: its final model.")
    base_model = forms.CharField(max_length=1000, required=False, label="Base model",
                                 help_text="A local model folder, or a hub id (org/name) the workers can reach.")
    environment_kind = forms.ChoiceField(choices=ENVIRONMENT_KINDS, widget=forms.RadioSelect, label="Environment")
    environment_class = forms.ChoiceField(choices=(), required=False, label="Python class")
    bfcl_classes = forms.CharField(required=False, label="BFCL classes",
                                   help_text="Comma-separated, e.g. GorillaFileSystem, MathAPI.")
    num_generations = forms.IntegerField(label="Group size (generations per prompt)")
    prompts_per_step = forms.IntegerField(label="Prompts per step")
    max_tool_calling_iterations = forms.IntegerField(label="Max tool-calling iterations")
    max_completion_length = forms.IntegerField(label="Max completion length (tokens)")
    temperature = forms.FloatField()
    beta = forms.FloatField(label="Beta (KL)")
    learning_rate = forms.FloatField()
    max_steps = forms.IntegerField(label="Steps")
    rollout_every = forms.IntegerField(label="Rollouts every N steps",
                                       help_text="The episodes of every Nth step are kept for curation.")
    save_steps = forms.IntegerField(label="Checkpoint every N steps")
    logging_steps = forms.IntegerField(label="Log every N steps")
    seed = forms.IntegerField()
    device = forms.ChoiceField(choices=DEVICE_CHOICES, help_text=DEVICE_HELP)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        snapshots = project.snapshots.filter(kind="prompt", status=JobStatus.SUCCEEDED)
        self.fields["snapshot"].queryset = snapshots
        self.fields["from_run"].queryset = project.training_jobs.filter(kind__in=("sft", "dpo"),
                                                                        status=JobStatus.SUCCEEDED)
        classes = [*runner.BUILTIN_ENVIRONMENTS, *allowed_classes()]
        self.fields["environment_class"].choices = [(c, c) for c in classes]
        for name in runner.REWARD_NAMES:
            label = "Environment's own reward (get_reward)" if name == runner.ENVIRONMENT_REWARD else name
            self.fields[weight_field(name)] = forms.FloatField(required=False, label=label,
                                                               help_text="Blank: not used.")
        if not self.is_bound and not self.initial.get("snapshot") and (newest := snapshots.first()):
            self.initial["snapshot"] = newest.pk
        self.grpo_settings: runner.GRPOSettings | None = None

    @classmethod
    def initial_for(cls, project) -> dict:
        """The defaults, the demo model and environment, then what this project launched last."""
        s = runner.GRPOSettings().to_dict()
        remembered = remembered_launch(project, "grpo")
        s.update({k: v for k, v in remembered.items() if k in s})
        values = {k: s[k] for k in SETTINGS_FIELDS}
        values["base_model"] = remembered.get("base_model", str(settings.DEMO_MODEL_DIR))
        env = s["environment"]
        values.update(environment_kind=env.get("kind", "python"), environment_class=env.get("class", ""),
                      bfcl_classes=", ".join(env.get("classes") or []))
        values.update({weight_field(k): v for k, v in s["rewards"].items()})
        return values

    def environment(self, data: dict) -> dict:
        kind = data.get("environment_kind") or ""
        if kind == "python":
            return {"kind": kind, "class": data.get("environment_class") or ""}
        if kind == "bfcl":
            return {"kind": kind, "classes": [c.strip() for c in (data.get("bfcl_classes") or "").split(",") if c.strip()]}
        return {"kind": kind}

    def clean(self):
        data = super().clean()
        given = {k: data[k] for k in SETTINGS_FIELDS if data.get(k) not in (None, "")}
        if data.get("from_run"):
            data["base_model"], given["start_adapter"] = start_of(data["from_run"])
        given["environment"] = self.environment(data)
        given["rewards"] = {name: data[weight_field(name)] for name in runner.REWARD_NAMES
                            if data.get(weight_field(name)) is not None}
        self.grpo_settings = runner.GRPOSettings.from_dict(given)
        problems = grpo_errors(self.project, data.get("snapshot"), data.get("base_model") or "", self.grpo_settings)
        if "rewards" in problems:  # on the first weight field, where the lead looks
            problems[weight_field(runner.REWARD_NAMES[0])] = problems.pop("rewards")
        add_problems(self, {PROBLEM_FIELDS.get(k, k) or "__all__": v for k, v in problems.items()})
        return data

    def remembered_values(self) -> dict:
        return {**self.grpo_settings.to_dict(), "base_model": self.cleaned_data["base_model"].strip(),
                "snapshot": self.cleaned_data["snapshot"].pk}

    def section(self, names) -> list:
        return [self[n] for n in names if n in self.fields]

    def run_fields(self):
        return self.section(["name", "snapshot", "from_run", "base_model"])

    def environment_fields(self):
        return self.section(["environment_class", "bfcl_classes"])

    def reward_fields(self):
        return self.section([weight_field(n) for n in runner.REWARD_NAMES])

    def rollout_fields(self):
        return self.section(["num_generations", "prompts_per_step", "max_tool_calling_iterations",
                             "max_completion_length", "temperature", "beta"])

    def schedule_fields(self):
        return self.section(["learning_rate", "max_steps", "rollout_every", "save_steps", "logging_steps", "seed",
                             "device"])
