"""GRPO jobs: validate (every problem at once, by field), create the ``TrainingJob`` row (kind
``grpo``) and queue it; the worker's job file (``rl.runner.GRPORunConfig``) and command.

The row, the queue, cancel, resume, the sweep and the run page are the training jobs' own
(``training.jobs``); only what a GRPO run reads and runs differs (``training.job_kinds``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.conf import settings

from jobs.runner_io import command_for
from rl import runner
from training.jobs import LaunchError, app_commit, create_job, runs_root, snapshot_error, snapshot_info
from training.models import Snapshot, TrainingJob, trust_remote_code_for
from training.runner import dataset_columns
from training.roots import PathError, confined_model, confined_path, model_error


def allowed_classes() -> list[str]:
    """The environment classes an admin registered (``STUDIO_ENVIRONMENT_CLASSES``)."""
    return list(getattr(settings, "ENVIRONMENT_CLASSES", []))


def prompt_snapshot_error(snapshot: Snapshot) -> str | None:
    """Why a GRPO run cannot train on ``snapshot``, or None (the SFT / DPO checks, for a prompt snapshot)."""
    return snapshot_error(snapshot, "grpo")


def grpo_errors(project, snapshot: Snapshot | None, base_model: str, s: runner.GRPOSettings) -> dict[str, str]:
    """Every problem with a GRPO launch, by form field (empty: it can run)."""
    errors: dict[str, str] = {}
    if snapshot is None:
        errors["snapshot"] = "Choose a finished prompt snapshot."
    elif snapshot.project_id != project.pk:
        errors["snapshot"] = "That snapshot belongs to another project."
    elif problem := prompt_snapshot_error(snapshot):
        errors["snapshot"] = problem
    if problem := model_error(base_model):
        errors["base_model"] = problem
    errors.update(runner.settings_errors(s, allowed_classes()))
    if problem := adapter_error(s.start_adapter):
        errors["start_adapter"] = problem
    if (s.environment or {}).get("kind") == "replay" and snapshot is not None and "snapshot" not in errors \
            and "recorded" not in dataset_columns(Path(snapshot.out_dir) / "hf"):
        # A prompt row holds the context and the gold calls, not the results those calls returned.
        errors.setdefault("environment", f"{snapshot} has no recorded tool results (a 'recorded' column) to "
                                         "replay; choose a Python or BFCL environment.")
    return errors


def start_of(run: TrainingJob) -> tuple[str, str]:
    """(base model, LoRA adapter folder or "") that a GRPO run starting from ``run``'s output loads:
    a full model's final folder, or a LoRA run's base model with its adapter (merged in the runner)."""
    final = Path(run.summary.get("final_dir") or Path(run.output_dir) / "final")
    if (final / "adapter_config.json").is_file():
        return run.base_model, str(final)
    return str(final), ""


def adapter_error(adapter: str) -> str | None:
    if not adapter:
        return None
    try:
        real = confined_path(adapter, "start_adapter")
    except PathError as exc:
        return exc.message
    if not (Path(real) / "adapter_config.json").is_file():
        return f"{adapter} is not a LoRA adapter folder (no adapter_config.json)."
    return None


def default_name(snapshot: Snapshot, base_model: str) -> str:
    return f"GRPO · {Path(base_model.rstrip('/')).name} · {snapshot}"[:200]


def launch_grpo(*, project, snapshot: Snapshot | None, base_model: str, grpo_settings: runner.GRPOSettings,
                user=None, name: str = "", enqueue: bool = True) -> TrainingJob:
    """Validate, create a queued ``grpo`` job and (after commit) send it to the ``train`` queue.
    The caller checks the role (lead); ``user=None`` is the CLI."""
    errors = grpo_errors(project, snapshot, base_model, grpo_settings)
    if errors:
        raise LaunchError(errors)
    base_model = confined_model(base_model)
    return create_job(project, snapshot, "grpo", base_model, name.strip() or default_name(snapshot, base_model),
                      grpo_settings.to_dict(), grpo_settings.max_steps, user=user, enqueue=enqueue)


def launch_from_dict(*, project, snapshot, base_model: str, settings_data: dict, user=None, name: str = "",
                     enqueue: bool = True) -> TrainingJob:
    """``manage.py train --kind grpo`` and the API: settings as JSON (a bad one is a LaunchError)."""
    try:
        s = runner.GRPOSettings.from_dict(settings_data)
    except ValueError as exc:
        raise LaunchError({"settings": str(exc)}) from None
    return launch_grpo(project=project, snapshot=snapshot, base_model=base_model, grpo_settings=s, user=user,
                       name=name, enqueue=enqueue)


def _config(snapshot: Snapshot, model: str, s: runner.GRPOSettings, output_dir: str, **job) -> runner.GRPORunConfig:
    template = Path(snapshot.out_dir) / "chat_template.jinja"
    return runner.GRPORunConfig(
        model=model, dataset_dir=str(Path(snapshot.out_dir) / "hf"), output_dir=output_dir, settings=s,
        snapshot=snapshot_info(snapshot), chat_template_file=str(template) if template.exists() else "",
        app_commit=app_commit(), trust_remote_code=trust_remote_code_for(model), allowed_classes=allowed_classes(),
        **job)


def run_config_for(job: TrainingJob) -> runner.GRPORunConfig:
    return _config(job.snapshot, job.base_model, runner.GRPOSettings.from_dict(job.config), job.output_dir,
                   job_id=job.pk, resume_from=job.resume_checkpoint)


def runner_command(cfg: runner.GRPORunConfig, job_file: Path, python: str | None = None) -> list[str]:
    return command_for("rl.runner", job_file, python or sys.executable)


def preview(snapshot: Snapshot, base_model: str, s: runner.GRPOSettings) -> dict:
    """The exact job file, GRPOConfig and command a launch would run (its folder named by placeholders)."""
    cfg = _config(snapshot, base_model.strip(), s, str(runs_root() / "<job id>-<created>"))
    device = "cpu" if s.device == "auto" else s.device
    cpu, cuda = runner.grpo_kwargs(cfg, "cpu"), runner.grpo_kwargs(cfg, "cuda")
    changes = ", ".join(f"{k}={cuda[k]!r}" if k in cuda else f"{k} at TRL's default"
                        for k in sorted(set(cpu) | set(cuda)) if cpu.get(k, "∅") != cuda.get(k, "∅"))
    return {"config": runner.grpo_call_text(cfg, device), "kwargs": runner.grpo_kwargs(cfg, device),
            "job_json": json.dumps(cfg.to_dict(), indent=2, sort_keys=True),
            "command": " ".join(runner_command(cfg, cfg.run_dir / "job.json", "python")),
            "auto": s.device == "auto", "cuda_changes": changes}
