"""python manage.py evaluate --model PATH_OR_URL --eval-set ID [--limit N] [options]

Runs an evaluation without the web server or a Celery worker: the same code path as the ``eval``
queue (a run row, the runner subprocess, results into the database), in this process, printing
progress, then the metrics table. ``--model`` is a local model folder (a training run's
``final`` folder, LoRA adapters included), or an ``http(s)://`` URL of an OpenAI-compatible server
on the endpoint allowlist (``--endpoint-model`` names the model there). The run shows up on the evaluations page like any
other. Exits non-zero unless the run succeeds. Ctrl-C cancels.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evaluation.generate import GenerationSettings
from evaluation.jobs import LaunchError, launch_eval, run_eval_job
from evaluation.models import EvalRun, EvalSet
from evaluation.scoring import METRICS
from jobs.supervisor import run_in_command
from training.models import TrainingJob
from training.paths import cli_path
from training.runner import FINAL_DIR


class Command(BaseCommand):
    help = "Evaluate a model folder or an OpenAI-compatible endpoint on an eval set, in this process."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="A local model folder, or an http(s):// endpoint URL")
        parser.add_argument("--eval-set", type=int, required=True, help="Eval set id")
        parser.add_argument("--limit", type=int, default=0, help="Evaluate the first N items (default: all)")
        parser.add_argument("--endpoint-model", default="", help="The model name to ask the endpoint for")
        parser.add_argument("--merge", action="store_true", help="Merge a LoRA adapter into its base model first")
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--max-steps", type=int, help="Model turns per item when replaying (1: no replay)")
        parser.add_argument("--config", type=Path, help="JSON file of generation settings "
                                                         "(evaluation.generate.GenerationSettings fields)")
        parser.add_argument("--name", default="", help="Run name (default: model · eval set)")

    def handle(self, *args, model: str, eval_set: int, limit: int, endpoint_model: str, merge: bool,
               config: Path | None, name: str, **opts):
        es = EvalSet.objects.select_related("project").filter(pk=eval_set).first()
        if es is None:
            raise CommandError(f"No eval set {eval_set}.")
        if limit < 0:
            raise CommandError("--limit must be 0 (all) or more.")
        try:
            given = json.loads(config.read_text()) if config else {}
            for key in ("max_new_tokens", "batch_size", "max_steps"):
                if opts.get(key) is not None:
                    given[key] = opts[key]
            gen = GenerationSettings.from_dict(given)
        except (OSError, ValueError) as exc:
            raise CommandError(f"settings: {exc}") from None
        if model.startswith(("http://", "https://")):
            source, kwargs = EvalRun.ENDPOINT, {"endpoint_url": model, "endpoint_model": endpoint_model}
        else:
            source, kwargs = _folder_source(model, merge)
        try:
            run = launch_eval(project=es.project, eval_set=es, model_source=source, gen=gen, limit=limit, name=name,
                              enqueue=False, **kwargs)
        except LaunchError as exc:
            raise CommandError("Cannot launch:\n" + "\n".join(f"  {k}: {m}" for k, m in exc.errors.items())) from None
        self.stdout.write(f"Evaluation #{run.pk} {run.name}: {run.total_items} items\n  folder: {run.output_dir}")
        run_in_command(run_eval_job, run, f"Evaluation #{run.pk}", echo=self.stdout.write)
        self.print_table(run)

    def print_table(self, run: EvalRun) -> None:
        overall = run.summary["overall"]
        self.stdout.write(self.style.SUCCESS(f"Evaluation #{run.pk} succeeded: {overall['n']} items scored"
                                             + (f", {run.failed_items} requests failed" if run.failed_items else "")))
        self.stdout.write(f"  {'metric':<20} {'rate':>7}  {'95% CI':>15}  {'n':>6}")
        for m in METRICS:
            r = overall["metrics"][m]
            if r["n"]:
                self.stdout.write(f"  {m:<20} {r['rate']:>7.1%}  [{r['low']:.3f}, {r['high']:.3f}]  {r['n']:>6}")
        calls = overall["counts"]["n_calls"]
        if calls["n"]:
            self.stdout.write(f"  {'calls per item':<20} {calls['mean']:>7.2f}")


def _folder_source(model: str, merge: bool) -> tuple[str, dict]:
    """A folder as the CLI gives it. A LoRA adapter folder (``adapter_config.json``) is evaluated
    through its training run when one in the database produced it, else through its base model."""
    folder = Path(model).expanduser()
    if (folder / "adapter_config.json").is_file():
        job = TrainingJob.objects.filter(output_dir=str(folder.resolve().parent)).first()
        if job is not None and folder.name == FINAL_DIR:
            return EvalRun.TRAINING_JOB, {"training_job": job, "merge_adapter": merge}
        raise CommandError(f"{model} is a LoRA adapter that no training run here produced; give its training "
                           f"run's final folder, or merge it into a model folder first.")
    return EvalRun.FOLDER, {"model_path": cli_path(model)}
