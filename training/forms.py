"""The launch form for SFT and DPO runs.

Types are parsed by the form fields; every rule about the values (ranges, combinations, the
snapshot's kind and audit, the model folder) lives in ``training.runner.settings_errors`` and
``training.jobs.launch_errors``, which the API and ``manage.py train`` use too.
"""

from __future__ import annotations

from django import forms
from django.conf import settings

from studio.forms import add_problems
from training import distributed, runner
from training.jobs import launch_errors, remembered_launch
from training.models import JobStatus, Snapshot

METHOD_CHOICES = [("full", "Full fine-tuning"), ("lora", "LoRA adapter (peft)")]
PRECISION_CHOICES = [("auto", "Auto (bf16 on CUDA, fp32 on CPU)"), ("bf16", "bf16 (CUDA only)"), ("fp32", "fp32")]
CHECKPOINTING_CHOICES = [("auto", "Auto (on with CUDA, off on CPU)"),
                         ("on", "On: less GPU memory, slower steps"),
                         ("off", "Off: faster, when the model fits in GPU memory")]
DEVICE_CHOICES = [("auto", "Auto"), ("cpu", "CPU"), ("cuda", "CUDA")]
DEVICE_HELP = "Auto: CUDA when the worker has it."
SCHEDULER_CHOICES = [(s, s.replace("_", " ")) for s in runner.SCHEDULERS]
LOSS_CHOICES = [(s, s) for s in runner.DPO_LOSS_TYPES]
STRATEGY_CHOICES = list(distributed.STRATEGY_LABELS.items())
SHARDING_CHOICES = [("full_shard", "Full shard"), ("shard_grad_op", "Gradients + optimizer"),
                    ("hybrid_shard", "Hybrid"), ("no_shard", "No sharding")]
OFFLOAD_CHOICES = [("none", "None"), ("cpu", "CPU")]
DISTRIBUTED_FIELDS = ("processes_per_node", "nodes", "strategy", "fsdp_sharding", "offload", "main_address",
                      "main_port")

# Form fields that are TrainSettings fields, in the order the page shows them.
SETTINGS_FIELDS = [f for f in runner.TrainSettings.__dataclass_fields__]
DPO_ONLY = ("beta", "loss_type")
SFT_ONLY = ("packing",)
LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
# Fields that may be left blank: blank means 0, which means "the snapshot's" / "use epochs".
BLANK_IS_ZERO = ("max_steps", "max_length")


class SnapshotChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, snap: Snapshot) -> str:
        label = f"#{snap.pk} {snap.name or snap.get_kind_display() + ' snapshot'} · {snap.sample_count} samples"
        if snap.content_hash:
            label += f" · {snap.content_hash[:10]}"
        if snap.blocked:
            label += f" · blocked: {snap.audit_errors} audit error(s)"
        return label


class LaunchForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="Blank: kind · model · snapshot.")
    snapshot = SnapshotChoiceField(queryset=Snapshot.objects.none(), empty_label="Choose a finished snapshot")
    base_model = forms.CharField(max_length=1000, label="Base model",
                                 help_text="A local model folder, or a hub id (org/name) the workers can reach.")
    method = forms.ChoiceField(choices=METHOD_CHOICES, widget=forms.RadioSelect)
    lora_r = forms.IntegerField(label="LoRA r", required=False)
    lora_alpha = forms.IntegerField(label="LoRA alpha", required=False)
    lora_dropout = forms.FloatField(label="LoRA dropout", required=False)
    lora_target_modules = forms.CharField(label="LoRA target modules", max_length=500, required=False,
                                          help_text="Comma-separated module names (q_proj,v_proj), or all-linear.")
    learning_rate = forms.FloatField(label="Learning rate", widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    num_train_epochs = forms.FloatField(label="Epochs")
    max_steps = forms.IntegerField(label="Max steps", required=False,
                                   help_text="Blank: train for the number of epochs.")
    batch_size = forms.IntegerField(label="Batch size (per device)")
    gradient_accumulation_steps = forms.IntegerField(label="Gradient accumulation")
    max_length = forms.IntegerField(label="Max length (tokens)", required=False,
                                    help_text="Blank: the snapshot's max length.")
    packing = forms.BooleanField(label="Pack sequences (padding-free)", required=False,
                                 help_text="Lays whole rows end to end up to max length, attention and position ids "
                                           "kept per row, our loss masks unchanged: no compute spent on padding. "
                                           "A batch is then batch size packed sequences, attending as one: "
                                           "keep it small and raise gradient accumulation.")
    warmup = forms.FloatField(label="Warmup", help_text="Steps, or a fraction of all steps when below 1.")
    lr_scheduler_type = forms.ChoiceField(label="Scheduler", choices=SCHEDULER_CHOICES)
    seed = forms.IntegerField()
    eval_fraction = forms.FloatField(label="Eval split",
                                     help_text="Used when the snapshot has no eval split: the fraction of train held "
                                               "out (0: none).")
    eval_steps = forms.IntegerField(label="Evaluate every (steps)")
    logging_steps = forms.IntegerField(label="Log every (steps)")
    save_steps = forms.IntegerField(label="Checkpoint every (steps)", help_text="A stopped run resumes from "
                                                                                  "its last checkpoint.")
    precision = forms.ChoiceField(choices=PRECISION_CHOICES)
    device = forms.ChoiceField(choices=DEVICE_CHOICES, help_text=DEVICE_HELP)
    gradient_checkpointing = forms.ChoiceField(label="Gradient checkpointing", choices=CHECKPOINTING_CHOICES,
                                               required=False,  # missing (older clients): auto
                                               help_text="Recomputes activations in the backward pass to save "
                                                         "memory; about 2x slower steps on a GPU.")
    beta = forms.FloatField(required=False, help_text="How far the model may move from the reference (0.1 usual).")
    loss_type = forms.ChoiceField(label="DPO loss", choices=LOSS_CHOICES, required=False)
    # Several processes (training.distributed); all optional: blank is one process.
    processes_per_node = forms.IntegerField(label="Processes per node", required=False,
                                            help_text="One per GPU; on CPU, DDP over gloo.")
    nodes = forms.IntegerField(required=False, help_text="Machines; each runs the launch command with its rank.")
    strategy = forms.ChoiceField(choices=STRATEGY_CHOICES, required=False,
                                 help_text="DDP: a full model per process. FSDP: shards it. ZeRO-2: shards optimizer "
                                           "state and gradients; ZeRO-3: the parameters too (DeepSpeed only where "
                                           "it is installed, an optional extra).")
    fsdp_sharding = forms.ChoiceField(label="FSDP sharding", choices=SHARDING_CHOICES, required=False,
                                      help_text="Full: parameters, gradients and optimizer state. Hybrid: shard in a "
                                                "node, replicate across nodes.")
    offload = forms.ChoiceField(label="Offload", choices=OFFLOAD_CHOICES, required=False,
                                help_text="CPU: less GPU memory, slower steps.")
    main_address = forms.CharField(label="First node's address", max_length=255, required=False,
                                   help_text="Several nodes only: where they meet.")
    main_port = forms.IntegerField(label="First node's port", required=False)

    def __init__(self, *args, project, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.project, self.kind = project, kind
        snapshots = project.snapshots.filter(kind=kind, status=JobStatus.SUCCEEDED)
        self.fields["snapshot"].queryset = snapshots
        if not self.is_bound and not self.initial.get("snapshot") and (newest := snapshots.first()):
            self.initial["snapshot"] = newest.pk  # the likeliest choice: the newest finished snapshot
        for name in DPO_ONLY if kind != "dpo" else SFT_ONLY:
            del self.fields[name]
        self.train_settings: runner.TrainSettings | None = None

    @classmethod
    def initial_for(cls, project, kind: str, *, remembered: bool = True) -> dict:
        """The kind's defaults, the demo model, then (unless ``remembered`` is off) what this
        project launched last."""
        values = runner.TrainSettings.defaults_for(kind).to_dict()
        values["base_model"] = str(settings.DEMO_MODEL_DIR)
        if remembered:
            values.update(remembered_launch(project, kind))
        for name in BLANK_IS_ZERO:
            if not values.get(name):
                values[name] = None
        return values

    def clean(self):
        data = super().clean()
        given = {k: data[k] for k in SETTINGS_FIELDS if k in self.fields and data.get(k) not in (None, "")}
        for name in BLANK_IS_ZERO:
            given.setdefault(name, 0)
        try:
            self.train_settings = runner.TrainSettings.from_dict(given, self.kind)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        # Every problem at once (a missing snapshot must not hide a bad learning rate), but one
        # message per field: a field's own parsing error says it first.
        problems = launch_errors(self.project, data.get("snapshot"), self.kind, data.get("base_model") or "",
                                 self.train_settings)
        add_problems(self, problems)
        return data

    def remembered_values(self) -> dict:
        """What the next launch form of this project starts from."""
        values = self.train_settings.to_dict()
        values["base_model"] = self.cleaned_data["base_model"].strip()
        values["snapshot"] = self.cleaned_data["snapshot"].pk
        return values

    # Groups of fields for the template (so the page reads in sections).
    def section(self, names) -> list:
        return [self[n] for n in names if n in self.fields]

    def run_fields(self):
        return self.section(["name", "snapshot", "base_model"])

    def lora_fields(self):
        return self.section(LORA_FIELDS)

    def schedule_fields(self):
        return self.section(["learning_rate", "num_train_epochs", "max_steps", "batch_size",
                             "gradient_accumulation_steps", "max_length", "packing", "warmup", "lr_scheduler_type", "seed"])

    def eval_fields(self):
        return self.section(["eval_fraction", "eval_steps", "logging_steps", "save_steps"])

    def hardware_fields(self):
        return self.section(["precision", "device", "gradient_checkpointing"])

    def dpo_fields(self):
        return self.section(DPO_ONLY)

    def distributed_fields(self):
        return self.section(DISTRIBUTED_FIELDS)
