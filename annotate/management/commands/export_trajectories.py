"""python manage.py export_trajectories --project SLUG --format raw|messages OUT"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.formats import export_records
from annotate.models import Project


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
        qs = proj.trajectories.order_by("id")
        if status != "any":
            qs = qs.filter(status=status)
        out.parent.mkdir(parents=True, exist_ok=True)
        n = 0
        with out.open("w", encoding="utf-8") as f:
            for start in range(0, qs.count(), 500):
                docs = [t.to_canonical() for t in qs[start:start + 500]]
                for rec in export_records(docs, format):
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    n += 1
        self.stdout.write(self.style.SUCCESS(f"Wrote {n} trajectories to {out}"))
