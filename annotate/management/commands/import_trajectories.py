"""python manage.py import_trajectories PATH --project SLUG [--format ...] [--skip-invalid] [--dry-run]"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotate.formats.summary import render_text, summarize
from annotate.forms import IMPORT_FORMATS
from annotate.ingest import sqlite
from annotate.ingest.reader import parse_file
from annotate.ingest.sniff import is_not_text
from annotate.ingest.writer import get_or_create_project, import_file


class Command(BaseCommand):
    help = "Import annotated conversations into a project (created with the default taxonomy if missing)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--project", required=True, help="Project slug")
        parser.add_argument("--format", default="auto", choices=[f for f, _ in IMPORT_FORMATS])
        parser.add_argument("--answers", type=Path, help="BFCL possible-answer file (gold reference)")
        parser.add_argument("--tools", type=Path, help="JSON list of tool specs for records that carry none "
                                                       "(e.g. tau-bench's airline_tools.json)")
        parser.add_argument("--skip-invalid", action="store_true",
                            help="Import the valid records and report the rest (default: all or nothing)")
        parser.add_argument("--dry-run", action="store_true",
                            help="Read the file and print what would be written (format, counts, mapped fields, "
                                 "keys kept in extra, the first record as canonical steps); write nothing")

    def handle(self, *args, path, project: str, format: str, answers, skip_invalid: bool, tools=None,
               dry_run: bool = False, **o):
        path = Path(path)
        answers = Path(answers) if answers else None
        tools = Path(tools) if tools else None
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        size = path.stat().st_size
        if size > settings.IMPORT_MAX_BYTES:
            raise CommandError(f"{path}: {size:,} bytes is over the limit of {settings.IMPORT_MAX_BYTES:,} "
                               "bytes (IMPORT_MAX_BYTES)")
        for extra in (answers, tools):
            if extra is not None and not extra.is_file():
                raise CommandError(f"{extra}: no such file")
        if dry_run:  # (not even the project is created)
            result = parse_file(path.read_bytes(), path.name, format, settings.IMPORT_MAX_BYTES, skip_invalid,
                                answers.read_bytes() if answers else None,
                                answers_filename=answers.name if answers else "",
                                tools=tools.read_bytes() if tools else None, tools_filename=tools.name if tools else "")
            s = summarize(result)
            self.stdout.write(render_text(s))
            for e in s["errors"]:
                self.stderr.write(f"{e['file']}" + (f":{e['line']}" if e["line"] else "")
                                  + (f" [{e['field']}]" if e["field"] else "") + f": {e['message']}")
            would = 0 if result.errors and not skip_invalid else len(result.trajectories)
            self.stdout.write(f"Dry run: nothing written; an import would write {would} trajectories.")
            return
        proj, created = get_or_create_project(project)
        if created:
            self.stdout.write(f"Created project '{proj.slug}' with the default error-label taxonomy.")
        outcome = import_file(proj, path.read_bytes(), path.name, fmt=format, skip_invalid=skip_invalid,
                              answers=answers.read_bytes() if answers else None,
                              answers_filename=answers.name if answers else "",
                              tools=tools.read_bytes() if tools else None, tools_filename=tools.name if tools else "")
        sqlite.wait_for_checkpoints()  # (fold the import into the database file before this process ends)
        for e in outcome.errors[:50]:
            line = e.get("line")
            where = f"{e.get('file', path.name)}" + (f":{line}" if line else "")
            field = f" [{e['field']}]" if e.get("field") else ""
            self.stderr.write(f"{where}{field}: {e.get('message')}")
        if outcome.more_than(50) > 0:
            self.stderr.write(f"... and {outcome.more_than(50):,} more problems")
        if outcome.errors and not outcome.imported:
            raise CommandError(f"nothing imported from {path.name}: {outcome.skipped:,} problem(s)"
                               + ("" if skip_invalid or is_not_text(outcome.errors) else "; use --skip-invalid to import the valid records"))
        self.stdout.write(self.style.SUCCESS(
            f"Imported {outcome.imported} trajectories into '{proj.slug}'"
            + (f", skipped {outcome.skipped} invalid record(s)" if outcome.skipped else "")))
