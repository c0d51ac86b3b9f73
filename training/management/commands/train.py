"""python manage.py train --snapshot ID --kind sft|dpo|grpo --model PATH_OR_ID [--config FILE] [--name NAME]

Runs a training job without the web server or a Celery worker: the same code path as the
``train`` queue (a job row, the runner subprocess, metrics into the database), in this process,
printing progress. ``--config`` is a JSON file of launch settings (``training.runner.TrainSettings``
fields, e.g. ``{"max_steps": 50, "method": "lora"}``; for ``grpo``, ``rl.runner.GRPOSettings`` fields on a
prompt snapshot); missing ones take the defaults. The job
shows up on the runs page like any other. Exits non-zero unless the run succeeds. Ctrl-C cancels.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jobs.supervisor import run_in_command
from training import job_kinds, runner
from training.jobs import LaunchError, launch_training, run_training_job
from training.models import Snapshot
from training.paths import cli_path


class Command(BaseCommand):
    help = "Train a model on a snapshot (SFT or DPO) in this process, printing progress."

    def add_arguments(self, parser):
        parser.add_argument("--snapshot", type=int, required=True, help="Snapshot id")
        parser.add_argument("--kind", required=True, choices=[*runner.KINDS, *job_kinds.EXTRA_KINDS])
        parser.add_argument("--model", required=True, help="A local model folder or a hub id")
        parser.add_argument("--config", type=Path, help="JSON file of training settings")
        parser.add_argument("--name", default="", help="Run name (default: kind · model · snapshot)")

    def handle(self, *args, snapshot: int, kind: str, model: str, config: Path | None, name: str, **opts):
        snap = Snapshot.objects.select_related("project").filter(pk=snapshot).first()
        if snap is None:
            raise CommandError(f"No snapshot {snapshot}.")
        try:
            given = json.loads(config.read_text()) if config else {}
            train_settings = None if kind in job_kinds.EXTRA_KINDS else runner.TrainSettings.from_dict(given, kind)
        except (OSError, ValueError) as exc:
            raise CommandError(f"--config {config}: {exc}") from None
        try:
            if kind in job_kinds.EXTRA_KINDS:  # grpo (the rl app): its own settings
                job = job_kinds.EXTRA_KINDS[kind].launch(project=snap.project, snapshot=snap, base_model=cli_path(model),
                                                         settings_data=given, name=name, enqueue=False)
            else:
                job = launch_training(project=snap.project, snapshot=snap, kind=kind, base_model=cli_path(model),
                                      train_settings=train_settings, name=name, enqueue=False)
        except LaunchError as exc:
            raise CommandError("Cannot launch:\n" + "\n".join(f"  {k}: {m}" for k, m in exc.errors.items())) from None
        self.stdout.write(f"Run #{job.pk} {job.name}\n  folder: {job.output_dir}")
        run_in_command(run_training_job, job, f"Run #{job.pk}", echo=self.stdout.write)
        results = job.summary.get("results", {})
        self.stdout.write(self.style.SUCCESS(
            f"Run #{job.pk} succeeded: {results.get('global_step')} steps, train loss "
            f"{results.get('train_loss', float('nan')):.4f}, {results.get('tokens_per_second', 0):.0f} tokens/s"
            + (f", last reward {results['last_reward']:.3f}" if "last_reward" in results else "")))
        self.stdout.write(f"  model: {job.summary.get('final_dir')}  (model card: README.md)")
