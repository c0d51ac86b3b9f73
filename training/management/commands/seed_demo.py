"""Create the demo users, project, trajectories and tiny model. Safe to run again.

It lives in training, not annotate, because it builds the tiny model too: the demo spans the
first two stages, and only a later stage may import an earlier one.

The users have known passwords: in the production shape (STUDIO_PRODUCTION) it runs only when
asked for with STUDIO_DEMO=1. `make run` asks for it.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotate.demo import TOOLS, demo_trajectories
from annotate.ingest.writer import write_trajectories
from annotate.models import Membership, Project, Tool
from training.models import JobStatus
from training.snapshots import claim, create_snapshot, run_snapshot_export
from training.tiny_model import build_tiny_model

NEEDS_WORK = {"demo-needs-fixing", "demo-unnecessary-call"}

DEMO_USERS = [
    # username, password, superuser, role in the demo project
    ("admin", "admin-demo", True, None),
    ("lead", "lead-demo", False, Membership.LEAD),
    ("annotator", "annotator-demo", False, Membership.ANNOTATOR),
]


class Command(BaseCommand):
    help = "Seed the demo project, users (admin / lead / annotator) and the tiny local model."

    def add_arguments(self, parser):
        parser.add_argument("--no-model", action="store_true", help="Skip building the tiny model.")

    def handle(self, *args, no_model=False, **opts):
        if settings.PRODUCTION and not settings.STUDIO_DEMO:
            raise CommandError("The demo users have known passwords (admin / admin-demo …); in the production shape "
                               "(STUDIO_PRODUCTION) seed_demo runs only with STUDIO_DEMO=1.")
        User = get_user_model()
        project, created = Project.objects.get_or_create(
            slug="demo", defaults={
                "name": "Demo: travel assistant",
                "description": "Every case type a tool-calling dataset must cover, ready to curate, render and train.",
                "guidelines": "Call a tool only when it is needed; ask when a required argument is missing; "
                              "say so when the tools cannot help; ground answers in tool results.",
                "target_template": "qwen3",
                "target_tokenizer": str(settings.DEMO_MODEL_DIR),
            })
        for spec in TOOLS:
            Tool.objects.get_or_create(project=project, name=spec["name"], defaults={
                "description": spec["description"], "parameters": spec["parameters"]})
        if not project.trajectories.exists():
            # The clean examples arrive approved, so a snapshot, a run and an evaluation work at
            # once; the two with mistakes wait in the queue for an annotator.
            docs = demo_trajectories()
            to_fix = [d for d in docs if d.meta.external_id in NEEDS_WORK]
            write_trajectories(project, [d for d in docs if d not in to_fix], status="approved")
            write_trajectories(project, to_fix)
        for username, password, superuser, role in DEMO_USERS:
            user, made = User.objects.get_or_create(username=username, defaults={
                "is_superuser": superuser, "is_staff": superuser})
            if made:
                user.set_password(password)
                user.save()
            if role:
                Membership.objects.get_or_create(project=project, user=user, defaults={"role": role})
        if not no_model:
            build_tiny_model(settings.DEMO_MODEL_DIR)
            self._prompt_snapshot(project)
        self.stdout.write(self.style.SUCCESS(
            f"Demo project '{project.slug}' with {project.trajectories.count()} trajectories; "
            f"tiny model at {settings.DEMO_MODEL_DIR}"))
        self.stdout.write("Log in as: " + ", ".join(f"{u} / {p}" for u, p, _, _ in DEMO_USERS))

    def _prompt_snapshot(self, project) -> None:
        """The demo's prompts, exported for GRPO (against rl.demo_environment.TravelTools, the demo's
        tools) and evaluation: rendered here, as ``create_snapshot`` does, once."""
        if project.snapshots.filter(kind="prompt", status=JobStatus.SUCCEEDED).exists():
            return
        snap = create_snapshot(project, "prompt", {"status": "approved"},
                               {"template": "qwen3", "tokenizer": str(settings.DEMO_MODEL_DIR)}, None,
                               name="Demo prompts (GRPO, evaluation)", enqueue=False, reuse=False)
        claim(snap.pk)
        snap = run_snapshot_export(snap)
        self.stdout.write(f"Prompt snapshot {snap.pk} ({snap.item_count} trajectories): {snap.get_status_display()}")
