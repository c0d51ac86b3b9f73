"""A snapshot's life from the web, the API and the CLI: plan, create (or reuse) and enqueue, retry,
override the audit, cancel.

    selection filters ──► matching trajectories ──► their current revisions (pinned)
                                                      │
    render settings (template, tokenizer, ...) ───────┴──► content hash ──► reuse or create + enqueue

``create_snapshot`` returns the existing snapshot when one with the same content hash is queued,
running or done (the same inputs give byte-identical files, so there is nothing to redo), and
otherwise a new queued row whose export runs in the worker (``training.snapshots.tasks``). A queued
one whose broker message was lost is sent again (``jobs.queue``); ``retry_export`` starts
a failed or cancelled export over.

No heavy imports here: the web process loads this module.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from annotate import permissions
from annotate.models import Project
from annotate.permissions import author_of
from jobs import rows as job_rows
from training.export import ExportSettings, SettingsError, content_fingerprint
from jobs.queue import revive_if_lost
from training.models import JobStatus, Snapshot, SnapshotItem
from training.roots import PathError, confined_export_settings
from training.snapshots.models import SnapshotPair
from training.snapshots.selection import (PinnedPair, Selection, SnapshotError, pin_revisions, select_pairs,
                                          select_trajectories, selection_projects)
from training.snapshots.tasks import export_snapshot

# --- creating ---------------------------------------------------------------------------------

@dataclass
class Plan:
    """What a snapshot would pin, and its hash, before anything is written."""

    kind: str
    selection: Selection
    settings: ExportSettings
    items: list[tuple[int, int]] = field(default_factory=list)
    pairs: list[PinnedPair] = field(default_factory=list)
    content_hash: str = ""


def default_settings(project: Project, render_settings: dict | None, kind: str) -> ExportSettings:
    """The request's render settings over the project's target template and tokenizer, with the
    template and tokenizer paths confined to the allowed roots (``training.roots``)."""
    d = {"template": project.target_template or "qwen3",
         "tokenizer": project.target_tokenizer or str(django_settings.DEMO_MODEL_DIR)}
    d.update({k: v for k, v in (render_settings or {}).items() if v not in (None, "")})
    d["kind"] = kind
    try:
        return confined_export_settings(ExportSettings.from_dict(d))
    except (SettingsError, PathError) as e:
        raise SnapshotError(e.message, e.field) from None


def plan_snapshot(project: Project, kind: str, filters: dict | None, render_settings: dict | None, *,
                  user=None, pairs: list[PinnedPair] | None = None) -> Plan:
    """Resolve the selection and settings and compute the content hash (nothing is written)."""
    if kind not in dict(Snapshot.KIND_CHOICES):
        raise SnapshotError(f"must be one of {', '.join(dict(Snapshot.KIND_CHOICES))}", "kind")
    selection = Selection.from_dict(filters)
    export_settings = default_settings(project, render_settings, kind)
    plan = Plan(kind=kind, selection=selection, settings=export_settings)
    if kind == "dpo":
        plan.pairs = list(pairs) if pairs is not None else select_pairs(project, selection.to_dict())
    else:
        projects = selection_projects(project, selection, user)
        plan.items = pin_revisions(select_trajectories(projects, selection))
    try:
        fingerprint = content_fingerprint(export_settings)
    except SettingsError as e:
        raise SnapshotError(e.message, e.field) from None
    body = {"kind": kind, "selection": selection.to_dict(), "settings": fingerprint,
            "items": plan.items, "pairs": [[p.source_id, p.key] for p in plan.pairs]}
    plan.content_hash = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return plan


def snapshot_root() -> Path:
    return Path(getattr(django_settings, "SNAPSHOT_DIR", django_settings.DATA_DIR / "snapshots"))


def create_snapshot(project: Project, kind: str, filters: dict | None, render_settings: dict | None, user, *,
                    name: str = "", pairs: list[PinnedPair] | None = None, out_dir: str | Path | None = None,
                    enqueue: bool = True, reuse: bool = True) -> Snapshot:
    """Pin a selection and queue its export, or return the snapshot that already has this content hash.

    ``user`` must be a lead of the project (or an admin); ``None`` is the trusted CLI. The returned
    row carries ``reused`` (True when an existing snapshot was returned).
    """
    if user is not None:
        permissions.require_role(user, project, permissions.LEAD)
    plan = plan_snapshot(project, kind, filters, render_settings, user=user, pairs=pairs)
    if not plan.items and not plan.pairs:
        raise SnapshotError("the selection matches nothing" + (" (no pairs)" if kind == "dpo" else ""), "filters")
    if reuse:
        existing = (Snapshot.objects.filter(project=project, kind=kind, content_hash=plan.content_hash)
                    .exclude(status__in=(JobStatus.FAILED, JobStatus.CANCELLED)).order_by("created_at").first())
        if existing is not None and (out_dir is None or Path(existing.out_dir) == Path(out_dir)):
            if enqueue and existing.status == JobStatus.QUEUED and revive_lost(existing) == "failed":
                existing = None  # out of attempts: it says why; this request makes a fresh one
            else:
                existing.reused = True
                existing.refresh_from_db()
                return existing
    with transaction.atomic():
        snap = Snapshot.objects.create(
            project=project, kind=kind, name=name[:200], filters=plan.selection.to_dict(),
            render_settings=plan.settings.to_dict(), content_hash=plan.content_hash,
            created_by=author_of(user),
            item_count=len(plan.items) or len(plan.pairs), message="queued")
        SnapshotItem.objects.bulk_create([SnapshotItem(snapshot=snap, trajectory_id=t, revision_id=r)
                                          for t, r in plan.items], batch_size=2000)
        SnapshotPair.objects.bulk_create([SnapshotPair(snapshot=snap, position=i, source_id=p.source_id, key=p.key,
                                                       document=p.document) for i, p in enumerate(plan.pairs)],
                                         batch_size=500)
        snap.out_dir = str(out_dir) if out_dir else str(snapshot_root() / project.slug /
                                                        f"{snap.pk}-{plan.content_hash[:12]}")
        snap.save(update_fields=["out_dir"])
        if enqueue:
            transaction.on_commit(lambda: export_snapshot.delay(snap.pk))
    snap.reused = False
    return snap


def revive_lost(snapshot: Snapshot) -> str:
    """Asked again for a queued snapshot: send its export again if its message is gone (see
    ``jobs.queue.revive_if_lost``; a short grace lets the first message arrive)."""
    return revive_if_lost(Snapshot, snapshot, timeout=getattr(django_settings, "JOB_REVIVE_GRACE", 10))


def retry_export(snapshot: Snapshot, user) -> Snapshot:
    """A lead starts a failed or cancelled export over, on the same pinned items and settings.

    The files of the attempt that stopped are never read: the export writes into a fresh folder
    beside its own and swaps the finished files in (``run_snapshot_export``).
    """
    if user is not None:
        permissions.require_role(user, snapshot.project, permissions.LEAD)
    with transaction.atomic():
        retried = Snapshot.objects.filter(pk=snapshot.pk, status__in=(JobStatus.FAILED, JobStatus.CANCELLED)).update(
            status=JobStatus.QUEUED, error="", message="queued (retry)", progress=0.0, cancel_requested=False,
            started_at=None, finished_at=None, heartbeat_at=None, worker_pid=None, attempts=0,
            enqueued_at=timezone.now())
        if not retried:
            snapshot.refresh_from_db()
            raise SnapshotError(f"only a failed or cancelled export can be retried; this one is "
                                f"{snapshot.get_status_display().lower()}", "status")
        transaction.on_commit(lambda: export_snapshot.delay(snapshot.pk))
    snapshot.refresh_from_db()
    return snapshot


def override_audit(snapshot: Snapshot, user, reason: str) -> Snapshot:
    """A lead accepts a snapshot's audit errors; who, when and why are recorded on the row."""
    permissions.require_role(user, snapshot.project, permissions.LEAD)
    reason = (reason or "").strip()
    if not reason:
        raise SnapshotError("say why the audit errors are acceptable", "reason")
    if snapshot.status != JobStatus.SUCCEEDED:
        raise SnapshotError("only a finished export can be overridden", "status")
    if snapshot.audit_errors == 0:
        raise SnapshotError("this snapshot has no audit errors to override", "status")
    snapshot.override_by = user
    snapshot.override_reason = reason
    snapshot.override_at = timezone.now()
    snapshot.save(update_fields=["override_by", "override_reason", "override_at"])
    return snapshot



def request_cancel(snapshot: Snapshot, user) -> str:
    """A lead stops a queued or running export: 'cancelled', 'cancelling' or 'finished'."""
    permissions.require_role(user, snapshot.project, permissions.LEAD)
    outcome = job_rows.request_cancel(snapshot)
    snapshot.refresh_from_db()
    return outcome
