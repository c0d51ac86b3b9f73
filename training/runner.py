"""Train one job with TRL: ``python -m training.runner JOB.json``.

The worker (``training.jobs.run_training_job``) writes ``JOB.json`` and starts this script in a
subprocess of its own process group; so does ``manage.py train``. Read it top to bottom:

1. ``RunConfig.load``: the job file (model, snapshot folder, run folder, ``TrainSettings``).
2. ``trl_kwargs``: the exact ``SFTConfig`` / ``DPOConfig`` arguments (pure; the launch form's
   preview shows the same dict).
3. ``main``: load the snapshot's dataset and the model, train (resuming from a checkpoint when
   asked), save the final model or adapter and write the model card.

Progress goes to ``metrics.jsonl`` in the run folder, one JSON event a line (see
``training.callbacks``); the worker tails it into the database. This module imports no Django
and nothing heavy at import time: the web process imports it for validation and the preview.

About 600 lines on purpose: it is the one training script, read top to bottom (settings, datasets,
trainer, saving); the packing and multi-GPU parts already live in ``training.packing`` and
``training.distributed``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from training import packing
from training.distributed import distributed_errors, is_distributed
from training.paths import PathRefused, confine, is_path_like, length_error
# EventLog and watch_parent are re-exported: tests and older callers know them from here.
from jobs.runner_io import EventLog, JobFile, command_for, resolve_device, run_main, watch_parent  # noqa: F401

KINDS = ("sft", "dpo")
METHODS = ("full", "lora")
PRECISIONS = ("auto", "bf16", "fp32")
DEVICES = ("auto", "cpu", "cuda")
CHECKPOINTING = ("auto", "on", "off")
SCHEDULERS = ("linear", "cosine", "cosine_with_min_lr", "constant", "constant_with_warmup", "polynomial",
              "inverse_sqrt")
DPO_LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down",
                  "sigmoid_norm")
# Libraries whose versions go into the model card.
LIBRARIES = ("torch", "transformers", "trl", "datasets", "peft", "accelerate", "tokenizers")
DEFAULT_MAX_LENGTH = 1024  # when neither the form nor the snapshot sets one
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
CARD_FILE = "README.md"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def typed_value(key: str, value: Any, typ: type) -> Any:
    """A JSON setting as its field's type: no bool for a number, no 2.5 for an int, true / false only
    for a bool (``bool("false")`` is True), an object for a dict. Shared by every job file's settings.

    >>> typed_value("max_steps", 4.0, int), typed_value("lr", "2e-5", float)
    (4, 2e-05)
    >>> typed_value("packing", "false", bool)
    Traceback (most recent call last):
    ValueError: packing: expected true or false, got 'false'
    """
    if typ is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true or false, got {value!r}")
        return value
    if typ is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected an object, got {value!r}")
        return dict(value)
    bad = isinstance(value, bool) or (typ is int and isinstance(value, float) and not value.is_integer())
    try:
        if bad:
            raise ValueError
        return typ(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: expected {'an' if typ is int else 'a'} {typ.__name__}, got {value!r}") from None


@dataclass
class TrainSettings:
    """What a lead chooses on the launch form (also ``manage.py train --config FILE``)."""

    method: str = "full"  # full fine-tuning or a LoRA adapter (peft)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = "all-linear"  # comma-separated module names, or all-linear
    learning_rate: float = 2e-5
    num_train_epochs: float = 1.0
    max_steps: int = 0  # 0: train for num_train_epochs
    batch_size: int = 2
    gradient_accumulation_steps: int = 1
    max_length: int = 0  # 0: the snapshot's render max_length
    warmup: float = 0.0  # steps, or a fraction of all steps when below 1 (as TrainingArguments.warmup_steps)
    lr_scheduler_type: str = "linear"
    seed: int = 42
    eval_fraction: float = 0.0  # held out of train when the snapshot has no eval split; 0: no held-out set
    eval_steps: int = 50
    logging_steps: int = 1
    save_steps: int = 100
    precision: str = "auto"
    device: str = "auto"
    # Gradient checkpointing: auto = on with CUDA (TRL's default: less GPU memory), off on CPU (it
    # only costs time there). Off on a GPU where the model fits: 2.4x faster for a 0.6B model on an
    # H200 (bench/random_qwen3.py, 20 steps of batch 8: 2,236 vs 5,292 tokens/s).
    gradient_checkpointing: str = "auto"
    # SFT only: TRL's padding-free packing of whole rows into sequences of up to max_length tokens,
    # attention kept inside each row, the rows' own labels unchanged (see training.packing). A batch
    # is then batch_size packed sequences, not batch_size rows.
    packing: bool = False
    beta: float = 0.1  # DPO only
    loss_type: str = "sigmoid"  # DPO only
    # Several processes (training.distributed): per node × nodes, and how the model is split.
    processes_per_node: int = 1
    nodes: int = 1
    strategy: str = "ddp"  # ddp, fsdp, deepspeed_zero2, deepspeed_zero3
    fsdp_sharding: str = "full_shard"
    offload: str = "none"  # cpu: FSDP parameters / DeepSpeed optimizer state (and ZeRO-3 parameters)
    main_address: str = ""  # the first node's host, where several nodes meet
    main_port: int = 29500

    @classmethod
    def defaults_for(cls, kind: str) -> TrainSettings:
        # DPO moves a model that already behaves: TRL's default rate for it is far lower.
        return cls(learning_rate=5e-7 if kind == "dpo" else 2e-5)

    @classmethod
    def from_dict(cls, data: dict[str, Any], kind: str = "sft") -> TrainSettings:
        """Settings from JSON (unknown keys are an error; missing keys take the kind's defaults).

        >>> TrainSettings.from_dict({"max_steps": 4}).max_steps
        4
        """
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(names)}")
        base = dataclasses.asdict(cls.defaults_for(kind))
        for key, value in data.items():
            base[key] = typed_value(key, value, type(base[key]))
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def never_evaluates(self) -> bool:
        """The run ends (max_steps) before its first evaluation would come (eval_steps)."""
        return bool(self.max_steps) and self.eval_steps > self.max_steps


def settings_errors(kind: str, s: TrainSettings) -> dict[str, str]:
    """Problems with ``s`` for a ``kind`` run, by field name (empty when it can run).

    >>> settings_errors("sft", TrainSettings(learning_rate=0))
    {'learning_rate': 'Must be above 0 (typical: 1e-5 to 2e-4).'}
    """
    errors: dict[str, str] = {}

    def check(name: str, ok: bool, message: str) -> None:
        if not ok and name not in errors:
            errors[name] = message

    check("method", s.method in METHODS, f"Choose one of: {', '.join(METHODS)}.")
    if s.method == "lora":
        check("lora_r", 1 <= s.lora_r <= 1024, "LoRA rank must be between 1 and 1024.")
        check("lora_alpha", s.lora_alpha > 0, "LoRA alpha must be above 0 (usually 2 × r).")
        check("lora_dropout", 0 <= s.lora_dropout < 1, "Dropout must be in [0, 1).")
        check("lora_target_modules", bool(target_modules(s.lora_target_modules)),
              "Name the modules to adapt (e.g. q_proj,v_proj) or all-linear.")
    check("learning_rate", s.learning_rate > 0, "Must be above 0 (typical: 1e-5 to 2e-4).")
    check("learning_rate", s.learning_rate < 1, "A learning rate of 1 or more diverges; typical: 1e-5 to 2e-4.")
    check("max_steps", s.max_steps >= 0, "Steps cannot be negative (0 trains for the number of epochs).")
    check("num_train_epochs", s.max_steps > 0 or s.num_train_epochs > 0,
          "Give a number of epochs above 0, or a number of steps.")
    check("batch_size", 1 <= s.batch_size <= 4096, "Batch size must be between 1 and 4096.")
    check("gradient_accumulation_steps", 1 <= s.gradient_accumulation_steps <= 4096, "Must be between 1 and 4096.")
    check("max_length", s.max_length == 0 or 16 <= s.max_length <= 1_048_576,
          "Max length must be between 16 and 1,048,576 tokens (blank: the snapshot's).")
    check("warmup", s.warmup >= 0, "Warmup cannot be negative.")
    check("lr_scheduler_type", s.lr_scheduler_type in SCHEDULERS, f"Choose one of: {', '.join(SCHEDULERS)}.")
    check("seed", 0 <= s.seed < 2**32, "Seed must be between 0 and 4294967295.")
    check("eval_fraction", 0 <= s.eval_fraction < 0.5, "Hold out less than half of the data (0 for none).")
    check("eval_steps", s.eval_steps >= 1, "Evaluate every 1 step or more.")
    check("logging_steps", s.logging_steps >= 1, "Log every 1 step or more.")
    check("save_steps", s.save_steps >= 1, "Save a checkpoint every 1 step or more.")
    check("precision", s.precision in PRECISIONS, f"Choose one of: {', '.join(PRECISIONS)}.")
    check("device", s.device in DEVICES, f"Choose one of: {', '.join(DEVICES)}.")
    check("gradient_checkpointing", s.gradient_checkpointing in CHECKPOINTING,
          f"Choose one of: {', '.join(CHECKPOINTING)}.")
    check("precision", not (s.precision == "bf16" and s.device == "cpu"),
          "bf16 training needs a CUDA device; on CPU choose auto or fp32.")
    check("packing", kind == "sft" or not s.packing, "Packing is for SFT runs only.")
    if kind == "dpo":
        check("beta", 0 < s.beta <= 10, "Beta must be in (0, 10]; 0.1 is usual.")
        check("loss_type", s.loss_type in DPO_LOSS_TYPES, f"Choose one of: {', '.join(DPO_LOSS_TYPES)}.")
    for name, message in distributed_errors(s.to_dict()).items():
        check(name, False, message)
    return errors


def relevant_settings(kind: str, s: TrainSettings) -> dict[str, Any]:
    """The settings that matter for this run (no LoRA fields for full fine-tuning, no DPO fields for SFT)."""
    skip = set()
    if s.method != "lora":
        skip |= {"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"}
    if kind != "dpo":
        skip |= {"beta", "loss_type"}
    if not is_distributed(s.to_dict()):
        skip |= {"processes_per_node", "nodes", "strategy", "fsdp_sharding", "offload", "main_address", "main_port"}
    if kind != "sft":
        skip.add("packing")
    return {k: v for k, v in s.to_dict().items() if k not in skip}


def model_reference_error(model: str, roots: Iterable[str | os.PathLike] | None = None) -> str | None:
    """Why ``model`` cannot be loaded, or None: a local folder with config.json, or a hub id.

    With ``roots`` (what the server passes for anything a user typed) a folder must lie inside
    one of them, and a path outside is refused with one message whether it exists or not.

    >>> model_reference_error("Qwen/Qwen3-0.6B") is None
    True
    >>> model_reference_error("/etc", roots=["/srv/models"])[:22]
    'Not an allowed path: g'
    """
    model = model.strip()
    if not model:
        return "Give a local model folder or a hub id (org/name)."
    if problem := length_error(model):
        return _sentence(problem)
    if roots is not None:
        if not is_path_like(model):
            if HUB_ID.match(model):
                return None
            return (f"{model[:100]!r} is neither an existing folder nor a hub id like org/name "
                    "(give a folder by its full path).")
        try:
            path = Path(confine(model, roots))
        except PathRefused as e:
            return _sentence(e.message)
    else:
        path = Path(model).expanduser()
        if not (path.is_absolute() or model.startswith(".") or path.exists()):
            if not HUB_ID.match(model):
                return f"{model!r} is neither an existing folder nor a hub id like org/name."
            return None
    if not path.is_dir():
        return f"No folder at {model}."
    if not (path / "config.json").exists():
        return f"{model} has no config.json: not a transformers model folder."
    return None


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def target_modules(text: str) -> str | list[str]:
    """``all-linear`` stays a string (peft's shorthand); anything else is a list of names."""
    names = [t.strip() for t in text.replace(" ", ",").split(",") if t.strip()]
    return "all-linear" if names == ["all-linear"] else names


@dataclass
class RunConfig(JobFile):
    """Everything one run needs: written by the worker as ``job.json`` in the run folder."""

    kind: str
    model: str
    dataset_dir: str  # the snapshot's hf/ folder (datasets.load_from_disk)
    output_dir: str  # the run folder: checkpoints/, final/, metrics.jsonl, train.log
    settings: TrainSettings = field(default_factory=TrainSettings)
    job_id: int | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)  # id, name, content_hash, render_settings...
    resume_from: str = ""  # a checkpoint folder of an earlier run
    chat_template_file: str = ""  # the template the snapshot was rendered and masked with
    app_commit: str = "unknown"
    trust_remote_code: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        data["settings"] = TrainSettings.from_dict(data.get("settings", {}), data.get("kind", "sft"))
        return cls(**data)


def runner_command(job_file: str | Path, python: str = sys.executable) -> list[str]:
    """The command the worker runs (cwd: the app's root)."""
    return command_for("training.runner", job_file, python)


def dataset_columns(dataset_dir: str | Path) -> list[str]:
    """Column names of a saved DatasetDict's train split, read from its metadata (no datasets import)."""
    info = Path(dataset_dir) / "train" / "dataset_info.json"
    try:
        return list(json.loads(info.read_text()).get("features", {}))
    except (OSError, ValueError):
        return []


def dataset_splits(dataset_dir: str | Path) -> list[str]:
    try:
        return list(json.loads((Path(dataset_dir) / "dataset_dict.json").read_text()).get("splits", []))
    except (OSError, ValueError):
        return []


def trl_kwargs(cfg: RunConfig, device: str, *, has_eval: bool | None = None,
               columns: list[str] | None = None) -> dict[str, Any]:
    """The exact keyword arguments of ``SFTConfig`` / ``DPOConfig`` for ``cfg`` on ``device``.

    CPU: fp32 (``use_cpu=True, bf16=False``) and no gradient checkpointing unless asked for (it
    only trades compute for GPU memory). CUDA: bf16 unless fp32 was asked for; gradient
    checkpointing as asked, else TRL's default (on).

    >>> kw = trl_kwargs(RunConfig("sft", "m", "d", "/runs/1", TrainSettings(max_steps=4)), "cpu", has_eval=False)
    >>> kw["use_cpu"], kw["bf16"], kw["max_steps"], kw["output_dir"]
    (True, False, 4, '/runs/1/checkpoints')
    """
    s = cfg.settings
    if has_eval is None:
        has_eval = ("eval" in dataset_splits(cfg.dataset_dir) or s.eval_fraction > 0) and not s.never_evaluates
    kw: dict[str, Any] = {
        "output_dir": str(Path(cfg.output_dir) / CHECKPOINTS_DIR),
        "learning_rate": s.learning_rate,
        "num_train_epochs": s.num_train_epochs,
        "max_steps": s.max_steps if s.max_steps > 0 else -1,
        "per_device_train_batch_size": s.batch_size,
        "per_device_eval_batch_size": s.batch_size,
        "gradient_accumulation_steps": s.gradient_accumulation_steps,
        "max_length": s.max_length or DEFAULT_MAX_LENGTH,
        "warmup_steps": int(s.warmup) if s.warmup >= 1 else s.warmup,
        "lr_scheduler_type": s.lr_scheduler_type,
        "seed": s.seed,
        "data_seed": s.seed,
        "logging_steps": s.logging_steps,
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": s.save_steps,
        "save_total_limit": 2,  # the newest two: one to resume from even if the last save was cut short
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": s.eval_steps if has_eval else None,
        "report_to": "none",
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "non_padding",  # tokens/s on the charts and in the card
        "dataloader_num_workers": 0,
        "trust_remote_code": cfg.trust_remote_code,
    }
    if device == "cpu":
        kw.update(use_cpu=True, bf16=False, gradient_checkpointing=s.gradient_checkpointing == "on")
    else:
        kw.update(use_cpu=False, bf16=s.precision != "fp32")
        if s.gradient_checkpointing != "auto":
            kw["gradient_checkpointing"] = s.gradient_checkpointing == "on"
    if cfg.kind == "sft":
        columns = dataset_columns(cfg.dataset_dir) if columns is None else columns
        # Loss on assistant tokens only: from the snapshot's own masks when it ships them
        # (assistant_masks), else from the template's {% generation %} markers (TRL swaps in its
        # training template for known families). Prompt / completion rows (one sample per turn)
        # are masked by TRL to the completion already.
        kw["assistant_only_loss"] = "messages" in columns or "assistant_masks" in columns or not columns
        if s.packing:
            kw.update(packing.sft_config_kwargs())
    else:
        kw.update(beta=s.beta, loss_type=[s.loss_type])
    return kw


def peft_kwargs(s: TrainSettings) -> dict[str, Any] | None:
    """``peft.LoraConfig`` arguments, or None for full fine-tuning."""
    if s.method != "lora":
        return None
    return {"r": s.lora_r, "lora_alpha": s.lora_alpha, "lora_dropout": s.lora_dropout,
            "target_modules": target_modules(s.lora_target_modules), "task_type": "CAUSAL_LM"}


def trl_call_text(cfg: RunConfig, device: str, **kw) -> str:
    """The config as Python, for the preview and the model card."""
    name = "SFTConfig" if cfg.kind == "sft" else "DPOConfig"
    args = trl_kwargs(cfg, device, **kw)
    lines = [f"{name}("] + [f"    {k}={v!r}," for k, v in args.items()] + [")"]
    lora = peft_kwargs(cfg.settings)
    if lora:
        lines += ["LoraConfig("] + [f"    {k}={v!r}," for k, v in lora.items()] + [")"]
    return "\n".join(lines)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run (trainer_state.json is the last file written)."""
    found = []
    for p in (Path(run_dir) / CHECKPOINTS_DIR).glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if not m:
            continue
        try:
            json.loads((p / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue  # cut short while saving
        found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def checkpoint_step(path: str | Path) -> int:
    m = re.search(r"checkpoint-(\d+)$", str(path).rstrip("/"))
    return int(m.group(1)) if m else 0


def model_card(cfg: RunConfig, *, device: str, versions: dict[str, str], results: dict[str, Any],
               template_sha256: str = "") -> str:
    """The README.md written next to the final model: what it was trained on, and how."""
    snap = cfg.snapshot
    render = snap.get("render_settings") or {}
    template = render.get("template") or snap.get("template") or "the tokenizer's own chat template"
    kind = cfg.kind.upper()
    what = "LoRA adapter" if cfg.settings.method == "lora" else "model"
    tags = ["trl", cfg.kind, "tool-calling", "trajectory-studio"] + (["lora", "peft"] if cfg.settings.method == "lora"
                                                                      else [])
    front = ["---", f"base_model: {cfg.model}",
             f"library_name: {'peft' if cfg.settings.method == 'lora' else 'transformers'}", "tags:"]
    front += [f"- {t}" for t in tags] + ["---", ""]
    body = [
        f"# {kind} {what} of {cfg.model}",
        "",
        f"Trained by Trajectory Studio (job {cfg.job_id}) with TRL {kind} on dataset snapshot "
        f"**{snap.get('name') or snap.get('id', '?')}**.",
        "",
        "## Training data",
        "",
        f"- Snapshot: {snap.get('name', '')} (id {snap.get('id', '?')}, kind {snap.get('kind', cfg.kind)})",
        f"- Snapshot content hash: `{snap.get('content_hash') or 'unknown'}`",
        f"- Samples: {snap.get('sample_count', '?')} from {snap.get('item_count', '?')} items",
        f"- Chat template: {template}" + (f" (sha256 `{template_sha256}`)" if template_sha256 else ""),
        "- Render settings:",
        "",
        "```json",
        json.dumps(render, indent=2, sort_keys=True),
        "```",
        "",
        "## Training",
        "",
        f"- Method: {'LoRA' if cfg.settings.method == 'lora' else 'full fine-tuning'}; device: {device}",
    ]
    if cfg.resume_from:
        body.append(f"- Resumed from checkpoint: `{cfg.resume_from}`")
    body += ["- Settings:", "", "```json", json.dumps(relevant_settings(cfg.kind, cfg.settings), indent=2, sort_keys=True), "```", "",
             "- TRL configuration:", "", "```python", trl_call_text(cfg, device), "```", "", "## Results", ""]
    body += [f"- {k}: {v}" for k, v in results.items()] or ["- (none recorded)"]
    body += ["", "## Software", ""]
    body += [f"- Python {platform.python_version()}"] + [f"- {k} {v}" for k, v in versions.items()]
    body += [f"- Trajectory Studio commit `{cfg.app_commit}`", ""]
    return "\n".join(front + body)


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# The training process -------------------------------------------------------------------------
# The libraries below are imported inside the functions that use them: the web process imports this
# module (FINAL_DIR, model_reference_error) and must not pay for them (-X importtime: datasets ~0.7 s,
# transformers ~0.6 s, trl's trainers with accelerate ~1.2 s, peft ~3.4 s).

def load_datasets(cfg: RunConfig):
    """Train and (optional) eval datasets from the snapshot folder."""
    import datasets  # heavy: see the note above

    # A snapshot folder is immutable (its files are hashed): TRL's tokenizing maps must not write
    # their cache files next to it. Without caching they go to a temporary folder.
    datasets.disable_caching()
    dd = datasets.load_from_disk(cfg.dataset_dir)
    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({"train": dd})
    train, evald = dd["train"], dd.get("eval")
    s = cfg.settings
    if s.never_evaluates:
        return train, None  # no evaluation would ever run: don't tokenize an eval set for nothing
    if evald is None and cfg.settings.eval_fraction > 0 and len(train) > 1:
        split = train.train_test_split(test_size=cfg.settings.eval_fraction, seed=cfg.settings.seed)
        train, evald = split["train"], split["test"]
    return train, evald


def build_trainer(cfg: RunConfig, device: str, events: EventLog):
    from transformers import AutoTokenizer  # heavy: see the note above load_datasets

    from training.callbacks import MetricsCallback, StepDelayCallback  # subclasses transformers' callback

    train, evald = load_datasets(cfg)
    kwargs = trl_kwargs(cfg, device, has_eval=evald is not None, columns=train.column_names)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    if cfg.chat_template_file and Path(cfg.chat_template_file).exists():
        # Train on exactly what the snapshot rendered and audited, not the model folder's template.
        tokenizer.chat_template = Path(cfg.chat_template_file).read_text()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    lora = peft_kwargs(cfg.settings)
    peft_config = None
    if lora:
        from peft import LoraConfig  # heavy: see the note above load_datasets

        peft_config = LoraConfig(**lora)
    callbacks = [MetricsCallback(events)]
    if delay := float(os.environ.get("STUDIO_TRAIN_STEP_DELAY", "0") or 0):
        # Fault-injection seam for the cancel / kill / resume tests: a slower step makes "kill it
        # mid-run" deterministic on any machine. Never set in production.
        callbacks.append(StepDelayCallback(delay))
    if cfg.kind == "sft":
        from trl import SFTConfig, SFTTrainer  # heavy: see the note above load_datasets

        trainer = SFTTrainer(model=cfg.model, args=SFTConfig(**kwargs), train_dataset=train, eval_dataset=evald,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    else:
        from trl import DPOConfig, DPOTrainer  # heavy: see the note above load_datasets

        trainer = DPOTrainer(model=cfg.model, args=DPOConfig(**kwargs), train_dataset=train, eval_dataset=evald,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    # Our callback prints one readable line a log; the Trainer's own dict printer would repeat it.
    from transformers.trainer_callback import PrinterCallback  # heavy: see the note above load_datasets

    trainer.remove_callback(PrinterCallback)
    if cfg.kind == "sft" and cfg.settings.packing:
        packed = trainer.train_dataset
        # Packing keeps rows that truncation left without a supervised token (they add no loss);
        # a dataset with none at all would train on nothing.
        if not packing.has_supervised_token(packed["labels"]):
            raise ValueError(f"no training sample has a supervised token within max_length={kwargs['max_length']}; "
                             "nothing to train on: raise max_length.")
        rows = packing.packed_rows(packed["seq_lengths"])
        events.write("status", message=f"Packed {rows} samples into {len(packed)} sequences of up to "
                                       f"{kwargs['max_length']} tokens")
        return trainer
    kept = len(trainer.train_dataset)
    if kept < len(train):
        message = (f"{len(train) - kept} of {len(train)} training samples have no supervised token left after "
                   f"truncation to max_length={cfg.settings.max_length}")
        if kept == 0:
            raise ValueError(message + "; nothing to train on: raise max_length.")
        events.write("status", message=message + "; they are skipped.")
    return trainer


def final_results(trainer, train_metrics: dict[str, Any], session_tokens: int) -> dict[str, Any]:
    """The numbers for the card and the job's summary.

    ``tokens_per_second``: non-padding input tokens of this session over the Trainer's
    ``train_runtime`` (the same definition the benchmark's plain TRL script uses).
    """
    out = {"global_step": trainer.state.global_step}
    for k in ("train_loss", "train_runtime", "train_samples_per_second", "epoch", "num_input_tokens_seen"):
        if k in train_metrics:
            out[k] = train_metrics[k]
    runtime = train_metrics.get("train_runtime") or 0
    if runtime > 0 and session_tokens > 0:
        out["tokens_per_second"] = round(session_tokens / runtime, 2)
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    if evals:
        out["eval_loss"] = evals[-1]["eval_loss"]
    return out


def train(cfg: RunConfig, events: EventLog) -> dict[str, Any]:
    quiet_libraries()
    device = resolve_device(cfg.settings.device)
    events.write("status", message=f"Loading {cfg.model} and the snapshot on {device}")
    trainer = build_trainer(cfg, device, events)
    events.write("status", message="Training")
    cpu_start = time.process_time()
    output = trainer.train(resume_from_checkpoint=cfg.resume_from or None)
    cpu_seconds = time.process_time() - cpu_start
    metrics_cb = next(cb for cb in trainer.callback_handler.callbacks if type(cb).__name__ == "MetricsCallback")
    final_dir = cfg.run_dir / FINAL_DIR
    events.write("status", message=f"Saving the final {'adapter' if cfg.settings.method == 'lora' else 'model'}")
    trainer.save_model(str(final_dir))  # every rank: FSDP and ZeRO-3 gather the weights together
    results = final_results(trainer, output.metrics, trainer.state.num_input_tokens_seen - metrics_cb.begin_tokens)
    results["train_cpu_seconds"] = round(cpu_seconds, 2)  # all threads; with tokens, a load-independent speed
    if not trainer.is_world_process_zero():
        return results  # one writer of the final folder's other files (several processes: rank 0)
    trainer.processing_class.save_pretrained(str(final_dir))
    template = getattr(trainer.processing_class, "chat_template", None) or ""

    card = model_card(cfg, device=device, versions=library_versions(), results=results,
                      template_sha256=hashlib.sha256(template.encode()).hexdigest() if template else "")
    (final_dir / CARD_FILE).write_text(card)
    return results


def quiet_libraries() -> None:
    """Keep the log the job page shows readable: no progress bars, no deprecation chatter."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import datasets  # heavy: see the note above load_datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()


def start_training(cfg: RunConfig, events: EventLog) -> dict[str, Any]:
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    events.write("status", message="Starting: importing torch, transformers and TRL")
    return train(cfg, events)


def main(argv: list[str] | None = None) -> int:
    return run_main(argv, module="training.runner", load=RunConfig.load, events_file=METRICS_FILE,
                    work=start_training, end=lambda cfg: {"final_dir": str(cfg.run_dir / FINAL_DIR)})


if __name__ == "__main__":
    sys.exit(main())
