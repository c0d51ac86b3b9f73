"""python manage.py create_snapshot --project SLUG --kind sft|dpo|prompt --template NAME_OR_PATH
--tokenizer PATH [--strategy auto|conversation|turn] [--no-reasoning-loss]
[--error-policy drop|truncate|mask] [--status approved|submitted|any] [--tokenized] OUT_DIR

Pins the selection, renders it in this process (the same code the export worker runs, printing
progress), and writes the files and audit.json into OUT_DIR. Re-running after a few edits only
re-renders what changed (the render cache is in the database). Exits non-zero when the audit has
errors (the files are written, and the snapshot is blocked until a lead overrides it).
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotate.models import Project
from training.models import JobStatus, Snapshot
from training.paths import cli_path
from training.snapshots import SnapshotError, claim, create_snapshot, override_audit, plan_snapshot, run_snapshot_export


class Command(BaseCommand):
    help = "Snapshot a project's trajectories (or pairs) and export them rendered through a chat template."

    def add_arguments(self, parser):
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--project", required=True)
        parser.add_argument("--kind", required=True, choices=["sft", "dpo", "prompt"])
        parser.add_argument("--template", required=True, help="registry name (qwen3, llama3_1_training ...), "
                                                              "model folder or .jinja file")
        parser.add_argument("--tokenizer", required=True, help="local tokenizer folder")
        parser.add_argument("--strategy", default="auto", choices=["auto", "conversation", "turn"])
        parser.add_argument("--no-reasoning-loss", action="store_true", help="keep reasoning as context only")
        parser.add_argument("--error-policy", default="mask", choices=["drop", "truncate", "mask"])
        parser.add_argument("--status", default="approved", choices=["approved", "submitted", "any"],
                            help="approved; submitted = submitted or approved; any")
        parser.add_argument("--tokenized", action="store_true", help="add input_ids, labels and assistant_masks")
        parser.add_argument("--max-length", type=int, default=None, help="tokens (default 8192)")
        parser.add_argument("--split", action="append", default=[], help="only these splits (repeatable)")
        parser.add_argument("--case-type", action="append", default=[], help="only these case types (repeatable)")
        parser.add_argument("--label", action="append", default=[], help="only trajectories with these error labels")
        parser.add_argument("--name", default="")
        parser.add_argument("--user", default="", help="record this user as the author (and overrider)")
        parser.add_argument("--override", default="", metavar="REASON",
                            help="accept audit errors (needs --user, a lead of the project)")

    def handle(self, *args, out_dir: Path, project: str, kind: str, **o):
        try:
            proj = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"no project '{project}'") from None
        user = None
        if o["user"]:
            user = get_user_model().objects.filter(username=o["user"]).first()
            if user is None:
                raise CommandError(f"no user '{o['user']}'")
        if o["override"] and user is None:
            raise CommandError("--override needs --user (the lead who accepts the audit errors)")
        filters = {"status": o["status"], "splits": o["split"], "case_types": o["case_type"], "labels": o["label"]}
        render_settings = {"template": cli_path(o["template"]), "tokenizer": cli_path(o["tokenizer"]),
                           "strategy": o["strategy"],
                           "reasoning_loss": not o["no_reasoning_loss"], "error_policy": o["error_policy"],
                           "tokenized": o["tokenized"], "max_length": o["max_length"]}
        out_dir = out_dir.resolve()
        try:
            snap = self._done_already(proj, kind, filters, render_settings, out_dir)
            if snap is None:
                snap = create_snapshot(proj, kind, filters, render_settings, user, name=o["name"], out_dir=out_dir,
                                       enqueue=False, reuse=False)
                claim(snap.pk)
                snap.refresh_from_db()
                self.stdout.write(f"Snapshot {snap.pk}: {snap.item_count} items, hash {snap.content_hash[:12]}")
                snap = run_snapshot_export(snap, echo=self._printer())
        except SnapshotError as e:
            raise CommandError(f"{e.field}: {e.message}" if e.field else e.message) from None
        if snap.status != JobStatus.SUCCEEDED:
            raise CommandError(f"export {snap.status}: {snap.error or snap.message}")
        if o["override"] and snap.audit_errors:
            override_audit(snap, user, o["override"])
        self._report(snap, out_dir)

    def _done_already(self, proj, kind, filters, render_settings, out_dir) -> Snapshot | None:
        """The finished snapshot of these exact inputs in this folder, if its files are still there."""
        plan = plan_snapshot(proj, kind, filters, render_settings)
        snap = (Snapshot.objects.filter(project=proj, kind=kind, content_hash=plan.content_hash,
                                        status=JobStatus.SUCCEEDED, out_dir=str(out_dir)).order_by("-created_at")
                .first())
        if snap is not None and (out_dir / "audit.json").exists() and (out_dir / "hf").is_dir():
            self.stdout.write(f"Snapshot {snap.pk} already holds these inputs (hash {snap.content_hash[:12]}); "
                              "files unchanged")
            return snap
        return None

    def _printer(self):
        last = {"pct": -1, "msg": ""}

        def echo(fraction: float, message: str) -> None:
            pct = int(fraction * 100)
            if pct != last["pct"] or (message != last["msg"] and not message.startswith("rendered")):
                self.stdout.write(f"[{pct:3d}%] {message}")
                self.stdout.flush()
                last.update(pct=pct, msg=message)

        return echo

    def _report(self, snap: Snapshot, out_dir: Path) -> None:
        audit = snap.audit or {}
        totals = audit.get("totals", {})
        self.stdout.write(f"{snap.sample_count} samples from {snap.item_count} items -> {out_dir}")
        if totals.get("tokens"):
            self.stdout.write(f"tokens {totals.get('tokens')}, supervised {totals.get('supervised_tokens', 0)}")
        for code, n in (audit.get("findings") or {}).items():
            self.stdout.write(f"  {code}: {n}")
        if snap.audit_errors and snap.override_by_id is None:
            raise CommandError(f"BLOCKED: the audit found {snap.audit_errors} errors (see {out_dir / 'audit.json'}); "
                               "a lead may accept them with --user NAME --override REASON")
        if snap.audit_errors:
            self.stdout.write(self.style.WARNING(f"{snap.audit_errors} audit errors overridden by "
                                                 f"{snap.override_by}: {snap.override_reason}"))
        self.stdout.write(self.style.SUCCESS(f"Snapshot {snap.pk} written to {out_dir}"))
