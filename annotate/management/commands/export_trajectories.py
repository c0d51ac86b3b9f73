"""python manage.py export_trajectories --project SLUG --format raw|messages OUT"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from annotate.projects.export import export_lines


class Command(BaseCommand):
    help = "Export a project's trajectories as JSONL in the raw or messages format (lossless)."

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path)
        parser.add_argument("--project", required=True)
        parser.add_argument("--format", default="raw", choices=["raw", "messages"])
        parser.add_argument("--status", default="any", choices=["any", "draft", "submitted", "approved", "rejected"])

    def handle(self, *args, out: Path, project: str, format: str, status: str, **o):
        try:
            proj = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"no project '{project}'")
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with out.open("w", encoding="utf-8") as f:
            for line in export_lines(proj, format, status):
                f.write(line)
                n += 1
        self.stdout.write(self.style.SUCCESS(f"Wrote {n} trajectories to {out}"))
