"""python manage.py pairs {create,list,review,suggestions,import,export} ... : preference pairs from the shell.

    pairs create --project SLUG --trajectory ID --turn T --step S [--category C] [--starter C]
                 [--chosen FILE.json] [--rejected FILE.json] [--note TEXT]
    pairs list --project SLUG [--status S] [--category C] [--source S] [--json]
    pairs review --status approved|rejected|draft ID [ID ...] [--note TEXT]
    pairs suggestions --project SLUG [--accept all|ID,...] [--dismiss ID,...]
    pairs import --project SLUG [--skip-invalid] [--override REASON] FILE
                 (candidates, When2Call questions / preference rows, ToolBench answer trees)
    pairs export --project SLUG [--template T] [--tokenizer PATH] [--max-length N]
                 [--category C ...] [--out DIR] [--wait]

The CLI acts as an operator (no per-project role check), like the other management commands.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.management.cli import project_by_slug
from annotate.models import Project, Trajectory
from annotate.pairs import core, services
from annotate.pairs.models import Pair, PairSuggestion, categories_for
from annotate.pairs.starters import starter_steps
from annotate.ingest.writer import get_or_create_project
from annotate.trajectory import SchemaError


_project = project_by_slug


def _read_steps(path: Path | None, where: str):
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return core.steps_from_dicts(data, where)
    except (OSError, json.JSONDecodeError) as e:
        raise CommandError(f"{path}: {e}") from None
    except SchemaError as e:
        raise CommandError(f"{path}: {e}") from None


class Command(BaseCommand):
    help = "Create, list, review, import and export preference pairs; accept or dismiss suggested pairs."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)

        c = sub.add_parser("create", help="fork a trajectory at (turn, step) into a draft pair")
        c.add_argument("--project", required=True)
        c.add_argument("--trajectory", type=int, required=True)
        c.add_argument("--turn", type=int, required=True, help="0-based turn index")
        c.add_argument("--step", type=int, required=True, help="0-based step index inside the turn (the cut)")
        c.add_argument("--category", default="other")
        c.add_argument("--starter", help="fill the rejected side with this category's typical bad variant")
        c.add_argument("--chosen", type=Path, help="JSON file: a list of canonical steps")
        c.add_argument("--rejected", type=Path, help="JSON file: a list of canonical steps")
        c.add_argument("--note", default="")
        c.add_argument("--override", default="", metavar="REASON",
                       help="keep a chosen side that fails validation, recording why")

        ls = sub.add_parser("list", help="list a project's pairs")
        ls.add_argument("--project", required=True)
        ls.add_argument("--status", choices=[s for s, _ in Pair.STATUS_CHOICES])
        ls.add_argument("--category")
        ls.add_argument("--source", choices=[s for s, _ in Pair.SOURCE_CHOICES])
        ls.add_argument("--json", dest="as_json", action="store_true", help="one JSON document per line")

        r = sub.add_parser("review", help="approve, reject or send pairs back to draft")
        r.add_argument("ids", type=int, nargs="+")
        r.add_argument("--status", required=True, choices=["approved", "rejected", "draft"])
        r.add_argument("--note")

        s = sub.add_parser("suggestions", help="list pairs suggested by corrections; accept or dismiss them")
        s.add_argument("--project", required=True)
        s.add_argument("--accept", help="'all' or comma-separated suggestion ids")
        s.add_argument("--dismiss", help="'all' or comma-separated suggestion ids")

        i = sub.add_parser("import", help="import preference records: candidates (one question, several answers), "
                                         "When2Call test questions or preference rows, ToolBench answer trees")
        i.add_argument("--project", required=True, help="Project slug (created when missing)")
        i.add_argument("--skip-invalid", action="store_true",
                       help="Import the pairs of the valid records and report the rest (default: all or nothing)")
        i.add_argument("--override", default="", metavar="REASON",
                       help="keep chosen sides that fail validation, recording why on each pair")
        i.add_argument("file", type=Path)

        e = sub.add_parser("export", help="create a DPO snapshot of the approved pairs")
        e.add_argument("--project", required=True)
        e.add_argument("--name", default="")
        e.add_argument("--template")
        e.add_argument("--tokenizer")
        e.add_argument("--max-length", type=int)
        e.add_argument("--category", action="append", default=[])
        e.add_argument("--out", type=Path, help="write the snapshot here (default: under the data dir)")
        e.add_argument("--wait", action="store_true", help="run the export in this process and wait for it")

    def handle(self, *args, action: str, **o):
        getattr(self, f"_{action}")(**o)

    # --------------------------------------------------------------------------------------
    def _create(self, project, trajectory, turn, step, category, starter, chosen, rejected, note, override="", **_):
        proj = _project(project)
        t = Trajectory.objects.filter(pk=trajectory, project=proj).first()
        if t is None:
            raise CommandError(f"no trajectory {trajectory} in project '{project}'")
        try:
            pair, revision = services.fork_trajectory(t, turn, step, category=category, note=note)
            if (steps := _read_steps(chosen, "chosen")) is not None:
                pair.chosen = steps
            if (steps := _read_steps(rejected, "rejected")) is not None:
                pair.rejected = steps
            if starter:
                pair.rejected = starter_steps(starter, pair.chosen, pair.context)
            pair.override = override.strip()
        except core.PairError as e:
            raise CommandError(str(e)) from None
        try:
            row = services.save_pair(proj, pair, user=None, trajectory=t, revision=revision)
        except core.PairError:
            for e in core.pair_errors(pair, categories_for(proj)):
                self.stderr.write(f"  {e}")
            raise CommandError("the pair was not saved") from None
        self.stdout.write(self.style.SUCCESS(f"Created draft pair {row.pk} ({row.category}) from trajectory {t.pk}, "
                                             f"turn {turn}, step {step}"))

    def _list(self, project, status, category, source, as_json, **_):
        qs = _project(project).pairs.select_related("author", "reviewer").order_by("id")
        for key, value in (("status", status), ("category", category), ("source", source)):
            if value:
                qs = qs.filter(**{key: value})
        for row in qs.iterator(chunk_size=500):
            if as_json:
                self.stdout.write(json.dumps({"id": row.pk, **row.to_document()}, ensure_ascii=False))
            else:
                self.stdout.write(f"{row.pk:>6}  {row.status:<9} {row.source:<11} {row.category:<18} "
                                  f"{' '.join(row.user_message.split())[:70]}")

    def _review(self, ids, status, note, **_):
        failed = 0
        for pk in ids:
            row = Pair.objects.select_related("project").filter(pk=pk).first()
            if row is None:
                self.stderr.write(f"pair {pk}: no such pair")
                failed += 1
                continue
            try:
                services.review_pair(row, status, user=None, note=note)
            except core.PairError as e:
                self.stderr.write(f"pair {pk}: {e}")
                failed += 1
            else:
                self.stdout.write(f"pair {pk}: {status}")
        if failed:
            raise CommandError(f"{failed} of {len(ids)} pairs were not reviewed")

    def _suggestions(self, project, accept, dismiss, **_):
        proj = _project(project)
        services.refresh_suggestions(proj)
        pending = proj.pair_suggestions.filter(status=PairSuggestion.PENDING)
        for action, spec in (("accept", accept), ("dismiss", dismiss)):
            if not spec:
                continue
            ids = list(pending.values_list("id", flat=True)) if spec == "all" else [
                int(x) for x in spec.split(",") if x.strip().isdigit()]
            d = services.decide_suggestions(proj, ids, action, user=None)
            for e in d.errors:
                self.stderr.write(f"suggestion {e['suggestion']}: {e['field']}: {e['message']}")
            self.stdout.write(self.style.SUCCESS(
                f"Accepted {len(d.accepted)} suggestions" if action == "accept" else f"Dismissed {d.dismissed} suggestions"))
            return
        for s in pending.select_related("trajectory"):
            self.stdout.write(f"{s.pk:>6}  {s.category:<18} trajectory {s.trajectory_id} turn {s.cut_turn} "
                              f"step {s.cut_step}  {' '.join(s.user_message.split())[:60]}")

    def _import(self, project, file, skip_invalid=False, override="", **_):
        try:
            data = file.read_bytes()
        except OSError as e:
            raise CommandError(f"{file}: {e.strerror}") from None
        proj, created = get_or_create_project(project)
        if created:
            self.stdout.write(f"Created project '{proj.slug}' with the default error-label taxonomy.")
        out = services.import_candidates(proj, data, file.name, user=None, skip_invalid=skip_invalid,
                                         override=override)
        for e in out.errors[:200]:
            where = f"{e['file']}:{e['line']}" if e.get("line") else e["file"]
            self.stderr.write(f"{where}: {e['field']}: {e['message']}" if e["field"] else f"{where}: {e['message']}")
        if out.errors and not out.created and not out.duplicates:
            raise CommandError("nothing imported: fix the records above"
                               + ("" if skip_invalid else " (or use --skip-invalid to import the valid ones)"))
        self.stdout.write(self.style.SUCCESS(
            f"Imported {out.created} pairs from {file.name}"
            + (f" ({', '.join(out.formats)})" if out.formats else "")
            + (f" ({out.duplicates} already present)" if out.duplicates else "")
            + (f"; skipped {out.skipped} invalid record(s)" if out.skipped else "")))

    def _export(self, project, name, template, tokenizer, max_length, category, out, wait, **_):
        proj = _project(project)
        render_settings = {k: v for k, v in (("template", template), ("tokenizer", tokenizer),
                                             ("max_length", max_length)) if v not in (None, "")}
        try:
            snap = services.export_pairs(proj, user=None, render_settings=render_settings, categories=category,
                                         name=name, out_dir=out, enqueue=not wait)
        except services.ExportError as e:
            raise CommandError(str(e)) from None
        if getattr(snap, "reused", False):
            self.stdout.write(f"Snapshot {snap.pk} already holds these pairs ({snap.status}): {snap.out_dir}")
            return
        if wait:
            snap = services.run_export_now(snap)
            if snap.status != "succeeded":
                raise CommandError(f"snapshot {snap.pk} {snap.status}: {snap.error or snap.message}")
            self.stdout.write(self.style.SUCCESS(f"DPO snapshot {snap.pk}: {snap.sample_count} pairs written to "
                                                 f"{snap.out_dir} (audit errors: {snap.audit_errors})"))
            return
        self.stdout.write(self.style.SUCCESS(f"Queued DPO snapshot {snap.pk} with {snap.item_count} pairs → {snap.out_dir}"))
