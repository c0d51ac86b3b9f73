"""python manage.py judge --project SLUG --model PATH_OR_URL [--trajectories 1,2 | --status S] [options]
python manage.py judge --agreement RUN_ID

Runs a judge (a model as one more annotator) over a batch of a project's trajectories in this
process, the same code path as the ``eval`` queue's worker: its proposals become suggestions in
the editor (never labels). ``--model`` is a local model folder (a training run's final folder
included) or an ``http(s)://`` endpoint on the allowlist. Prints the run's suggestions count and
what could not be read; ``--agreement`` prints a finished run's judge-vs-human table per label.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from evaluation.generate import GenerationSettings
from evaluation.judge import judge_vs_humans, launch_judge, run_judge_job
from evaluation.judge_models import JudgeRun
from evaluation.management.commands.evaluate import _folder_source
from evaluation.models import EvalRun
from training.jobs import LaunchError


class Command(BaseCommand):
    help = "Run a judge model over trajectories (suggestions, never labels), or print a judge run's agreement."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="Project slug")
        parser.add_argument("--model", help="A local model folder, or an http(s):// endpoint URL")
        parser.add_argument("--endpoint-model", default="", help="The model name to ask the endpoint for")
        parser.add_argument("--trajectories", default="", help="Comma-separated trajectory ids")
        parser.add_argument("--status", default="", help="Every trajectory with this status (e.g. submitted)")
        parser.add_argument("--limit", type=int, default=100, help="At most this many trajectories (default 100)")
        parser.add_argument("--max-new-tokens", type=int, default=512)
        parser.add_argument("--merge", action="store_true", help="Merge a LoRA adapter into its base model first")
        parser.add_argument("--agreement", type=int, help="Print judge run N's agreement with the humans")

    def handle(self, *args, **o):
        if o["agreement"]:
            run = JudgeRun.objects.filter(pk=o["agreement"]).first()
            if run is None:
                raise CommandError(f"--agreement: no judge run {o['agreement']}.")
            return self.print_agreement(run)
        project = Project.objects.filter(slug=o["project"] or "").first()
        if project is None:
            raise CommandError(f"--project: no project {o['project']!r}.")
        if not o["model"]:
            raise CommandError("--model: give a model folder or an endpoint URL.")
        if o["trajectories"]:
            try:
                ids = [int(x) for x in o["trajectories"].split(",") if x.strip()]
            except ValueError:
                raise CommandError("--trajectories: comma-separated ids, e.g. 3,5,8.") from None
        else:
            rows = project.trajectories.order_by("pk")
            if o["status"]:
                rows = rows.filter(status=o["status"])
            ids = list(rows.values_list("pk", flat=True)[:o["limit"]])
        if o["model"].startswith(("http://", "https://")):
            source, kwargs = EvalRun.ENDPOINT, {"endpoint_url": o["model"], "endpoint_model": o["endpoint_model"]}
        else:
            source, kwargs = _folder_source(o["model"], o["merge"])
        try:
            run = launch_judge(project=project, trajectory_ids=ids, model_source=source, enqueue=False,
                               gen=GenerationSettings(max_new_tokens=o["max_new_tokens"]), **kwargs)
        except LaunchError as exc:
            raise CommandError("Cannot launch:\n" + "\n".join(f"  {k}: {m}" for k, m in exc.errors.items())) from None
        self.stdout.write(f"Judge run #{run.pk}: {run.total_items} trajectories")
        outcome = run_judge_job(run.pk)
        run.refresh_from_db()
        for p in run.problems:
            self.stdout.write(f"  trajectory #{p['trajectory']}: {p['problem']}")
        if outcome != "succeeded":
            raise CommandError(f"Judge run #{run.pk} {outcome}: {run.error or run.message}")
        self.stdout.write(self.style.SUCCESS(f"Judge run #{run.pk}: {run.message}"))

    def print_agreement(self, run: JudgeRun) -> None:
        self.stdout.write(f"  {'label':<28} {'judge':>6} {'human':>6} {'both':>6} {'agree':>6} {'kappa':>6}")
        for r in judge_vs_humans(run):
            if r["judge"] or r["human"]:
                kappa = "-" if r["kappa"] is None else f"{r['kappa']:.2f}"
                self.stdout.write(f"  {r['label']:<28} {r['judge']:>6} {r['human']:>6} {r['both']:>6} "
                                  f"{r['agreement']:>6.2f} {kappa:>6}")
