"""Snapshots: a selection pinned to trajectory revisions (or pair documents), plus render settings.

The flow a view, the API, the CLI and the pairs pages all share:

    selection filters ──► matching trajectories ──► their current revisions (pinned)
                                                      │
    render settings (template, tokenizer, ...) ───────┴──► content hash ──► reuse or create + enqueue

``create_snapshot`` returns the existing snapshot when one with the same content hash is queued,
running or done (the same inputs give byte-identical files, so there is nothing to redo), and
otherwise a new queued row whose export runs in the worker (``training.snapshot_tasks``). A queued
one whose broker message was lost is sent again (``jobs.queue``); ``retry_export`` starts
a failed or cancelled export over.

DPO snapshots pin preference pairs. The pairs app hands them over in one of two ways: pass
``pairs=[PinnedPair(...)]`` to ``create_snapshot``, or register a selector once with
``register_pair_selector(fn)``, where ``fn(project, filters) -> iterable of PinnedPair``.

No heavy imports here: the web process loads this module.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.errors import InputError
from annotate import permissions
from annotate.permissions import author_of
from annotate.models import Project, Revision, StepLabel, Trajectory, documents_of
from annotate.services import implied_revision
from annotate.trajectory import CASE_TYPES, SPLITS
from training.export import ExportSettings, SettingsError, content_fingerprint
from training.models import JobStatus, Snapshot, SnapshotItem
from training.roots import PathError, confined_export_settings
from training.snapshot_models import RenderCacheEntry, SnapshotPair

STATUS_FILTERS = {
    "approved": (Trajectory.APPROVED,),
    # Everything an annotator has handed in: waiting for review or already approved.
    "submitted": (Trajectory.SUBMITTED, Trajectory.APPROVED),
    "any": None,
}


class SnapshotError(InputError):
    """A snapshot request that cannot be honoured; ``field`` names the offending input."""


# --- the selection ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Selection:
    """Which trajectories a snapshot takes. Empty tuples mean "no restriction".

    ``case_types`` and ``labels`` match any of the values given; ``projects`` adds other projects
    (by slug) whose trajectories join the snapshot's own project's; ``ids`` picks trajectories.
    """

    status: str = "approved"
    splits: tuple[str, ...] = ()
    case_types: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    ids: tuple[int, ...] = ()

    @classmethod
    def from_dict(cls, d: dict | None) -> "Selection":
        d = dict(d or {})
        status = d.get("status") or "approved"
        if status not in STATUS_FILTERS:
            raise SnapshotError(f"must be one of {', '.join(STATUS_FILTERS)}", "status")
        splits = _strings(d.get("splits"), "splits")
        bad = [s for s in splits if s not in SPLITS]
        if bad:
            raise SnapshotError(f"unknown split {bad[0]!r} (known: {', '.join(SPLITS)})", "splits")
        case_types = _strings(d.get("case_types"), "case_types")
        bad = [c for c in case_types if c not in CASE_TYPES]
        if bad:
            raise SnapshotError(f"unknown case type {bad[0]!r}", "case_types")
        ids = d.get("ids") or ()
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) for i in ids):
            raise SnapshotError("must be a list of trajectory ids", "ids")
        return cls(status=status, splits=tuple(sorted(set(splits))), case_types=tuple(sorted(set(case_types))),
                   labels=tuple(sorted(set(_strings(d.get("labels"), "labels")))),
                   projects=tuple(sorted(set(_strings(d.get("projects"), "projects")))),
                   ids=tuple(sorted(set(ids))))

    def to_dict(self) -> dict:
        d: dict = {"status": self.status}
        for name in ("splits", "case_types", "labels", "projects", "ids"):
            if getattr(self, name):
                d[name] = list(getattr(self, name))
        return d


def _strings(value, name: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SnapshotError("must be a list of strings", name)
    return list(value)


def selection_projects(project: Project, selection: Selection, user=None) -> list[Project]:
    """The snapshot's project and the extra ones named in the selection (leads only, when a user is given)."""
    out = [project]
    for slug in selection.projects:
        if slug == project.slug:
            continue
        other = Project.objects.filter(slug=slug).first()
        if other is None:
            raise SnapshotError(f"no project {slug!r}", "projects")
        if user is not None and permissions.role_in(user, other) not in (permissions.LEAD, permissions.ADMIN):
            raise SnapshotError(f"you are not a lead of project {slug!r}", "projects")
        out.append(other)
    return out


def select_trajectories(projects: list[Project], selection: Selection):
    """The trajectories a selection matches, in id order (the export's row order)."""
    qs = Trajectory.objects.filter(project__in=projects)
    statuses = STATUS_FILTERS[selection.status]
    if statuses is not None:
        qs = qs.filter(status__in=statuses)
    if selection.splits:
        qs = qs.filter(split__in=selection.splits)
    if selection.case_types:
        any_of = Q()
        for ct in selection.case_types:
            any_of |= Q(case_types_index__contains=f"|{ct}|")
        qs = qs.filter(any_of)
    if selection.labels:
        qs = qs.filter(pk__in=StepLabel.objects.filter(label__in=selection.labels).values("trajectory_id"))
    if selection.ids:
        qs = qs.filter(pk__in=selection.ids)
    return qs.order_by("id")


def pin_revisions(trajectories) -> list[tuple[int, int]]:
    """``(trajectory id, revision id)`` of each trajectory's current version, in id order.

    Every save writes a revision; a trajectory whose current version has none (an import that
    has not changed yet, whose rows are its version 1; rows edited by some other path) gets one
    written from its rows now, a few queries per 500, so what is pinned is what is stored.
    """
    pinned = dict(Revision.objects.filter(trajectory__in=trajectories, version=F("trajectory__version"))
                  .values_list("trajectory_id", "id"))
    ids = list(trajectories.values_list("id", flat=True))
    missing = [i for i in ids if i not in pinned]
    for start in range(0, len(missing), 500):
        part = missing[start:start + 500]
        docs = documents_of(part)
        rows = Trajectory.objects.filter(pk__in=part).values_list("id", "version", "status", "created_at", "updated_at")
        Revision.objects.bulk_create([
            implied_revision(tid, version, status, created, updated, docs[tid], otherwise="pinned by a snapshot")
            for tid, version, status, created, updated in rows], ignore_conflicts=True)
        pinned.update(Revision.objects.filter(trajectory_id__in=part, version=F("trajectory__version"))
                      .values_list("trajectory_id", "id"))
    return [(i, pinned[i]) for i in ids]


# --- pairs (DPO) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PinnedPair:
    """A preference pair as a snapshot pins it: ``annotate.pairs.Pair.to_document()`` and where it came from."""

    document: dict
    source_id: int | None = None

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


PairSelector = Callable[[Project, dict], Iterable[PinnedPair]]
_pair_selectors: list[PairSelector] = []


def register_pair_selector(fn: PairSelector) -> PairSelector:
    """Let DPO snapshots find pairs: ``fn(project, filters)`` yields the pairs to pin (in a stable order)."""
    if fn not in _pair_selectors:
        _pair_selectors.append(fn)
    return fn


def select_pairs(project: Project, filters: dict) -> list[PinnedPair]:
    out: list[PinnedPair] = []
    for fn in _pair_selectors:
        out.extend(fn(project, filters))
    return out


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
            from training.snapshot_tasks import export_snapshot

            transaction.on_commit(lambda: export_snapshot.delay(snap.pk))
    snap.reused = False
    return snap


def revive_lost(snapshot: Snapshot) -> str:
    """Asked again for a queued snapshot: send its export again if its message is gone (see
    ``jobs.queue.revive_if_lost``; a short grace lets the first message arrive)."""
    from jobs.queue import revive_if_lost

    return revive_if_lost(Snapshot, snapshot, timeout=getattr(django_settings, "JOB_REVIVE_GRACE", 10))


def retry_export(snapshot: Snapshot, user) -> Snapshot:
    """A lead starts a failed or cancelled export over, on the same pinned items and settings.

    The files of the attempt that stopped are never read: the export writes into a fresh folder
    beside its own and swaps the finished files in (``run_snapshot_export``).
    """
    from training.snapshot_tasks import export_snapshot

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


# --- the render cache, in the database ----------------------------------------------------------

class DbRenderCache:
    """``training.export.RenderCache`` over ``RenderCacheEntry`` rows, for one settings hash."""

    CHUNK = 500

    def __init__(self, settings_hash: str):
        self.settings_hash = settings_hash

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for start in range(0, len(keys), self.CHUNK):
            chunk = keys[start:start + self.CHUNK]
            for key, result, jsonl, arrow in (RenderCacheEntry.objects
                                              .filter(settings_hash=self.settings_hash, key__in=chunk)
                                              .values_list("key", "result", "jsonl", "arrow")):
                out[key] = {"result": result, "jsonl": jsonl, "arrow": bytes(arrow)}
        return out

    def put_many(self, entries: dict[str, dict]) -> None:
        RenderCacheEntry.objects.bulk_create(
            [RenderCacheEntry(key=k, settings_hash=self.settings_hash, result=e["result"], jsonl=e["jsonl"],
                              arrow=e["arrow"]) for k, e in entries.items()],
            batch_size=self.CHUNK, ignore_conflicts=True)


# --- running the export (worker side; also the CLI) ---------------------------------------------

class ExportCancelled(Exception):
    """A lead cancelled the export while it ran."""


def export_items(snapshot: Snapshot) -> tuple[list, Callable[[list[str]], dict[str, dict]]]:
    """The snapshot's pinned items as ``training.export.ExportItem`` and a loader for their documents."""
    from training.export import ExportItem

    if snapshot.kind == "dpo":
        rows = list(snapshot.pairs.order_by("position").values_list("position", "source_id", "key",
                                                                    "document__context__meta__split"))
        items = [ExportItem(key=f"p{key}", ident=f"pair-{sid}" if sid is not None else f"pair@{pos}",
                            split=split or "train") for pos, sid, key, split in rows]

        def load(keys: list[str]) -> dict[str, dict]:
            wanted = {k[1:] for k in keys}
            return {f"p{k}": d for k, d in snapshot.pairs.filter(key__in=wanted).values_list("key", "document")}

        return items, load
    rows = list(snapshot.items.order_by("trajectory_id").values_list(
        "trajectory_id", "revision_id", "revision__version", "revision__document__meta__split"))
    items = [ExportItem(key=f"r{rid}", ident=f"t{tid}v{version}", split=split or "train")
             for tid, rid, version, split in rows]

    def load(keys: list[str]) -> dict[str, dict]:
        ids = [int(k[1:]) for k in keys]
        return {f"r{pk}": doc for pk, doc in Revision.objects.filter(pk__in=ids).values_list("pk", "document")}

    return items, load


EXPORT_STEP_DELAY = float(os.environ.get("STUDIO_EXPORT_STEP_DELAY", "0") or 0)


class ProgressWriter:
    """Writes progress to the snapshot row (at most every ``every`` seconds), and stops the export
    when a lead asked to cancel it or the row stopped running (swept). ``echo`` also receives every
    update (the CLI prints them)."""

    def __init__(self, snapshot: Snapshot, echo: Callable[[float, str], None] | None = None, every: float = 1.0):
        self.snapshot, self.echo, self.every = snapshot, echo, every
        self.claimed_at = snapshot.started_at
        self._last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        import time

        from jobs.rows import beat

        if self.echo is not None:
            self.echo(fraction, message)
        if EXPORT_STEP_DELAY:  # tests: an export that runs long enough to be killed mid-way
            time.sleep(EXPORT_STEP_DELAY)
        now = time.monotonic()
        if now - self._last < self.every and fraction < 1.0:
            return
        self._last = now
        if not beat(Snapshot, self.snapshot.pk, claimed_at=self.claimed_at, progress=round(fraction, 4),
                    message=message[:500]):
            raise ExportCancelled("the snapshot is no longer running")
        if Snapshot.objects.filter(pk=self.snapshot.pk, cancel_requested=True).exists():
            raise ExportCancelled("cancelled by a lead")


class Heartbeat:
    """Beats the row every few seconds from a thread while the export works in long stretches
    (writing a large dataset), so the stale-job sweep never mistakes a busy export for a dead one."""

    def __init__(self, pk: int, every: float = 5.0, claimed_at=None):
        import threading

        self.pk, self.every, self.claimed_at = pk, every, claimed_at
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"snapshot-{pk}-heartbeat", daemon=True)

    def _run(self) -> None:
        from django.db import connection

        from jobs.rows import beat

        from django.db import DatabaseError

        try:
            while not self._stop.wait(self.every):
                try:
                    beat(Snapshot, self.pk, claimed_at=self.claimed_at)
                except DatabaseError:  # a busy database: the next beat will do (progress beats too)
                    pass
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def claim(snapshot_id: int) -> bool:
    """Take a queued snapshot for this worker; False when another delivery already took it."""
    import os

    from jobs.rows import claim

    return claim(Snapshot, snapshot_id, worker_pid=os.getpid(), message="starting")


def run_snapshot_export(snapshot: Snapshot, echo: Callable[[float, str], None] | None = None,
                        heartbeat: float = 5.0) -> Snapshot:
    """Render and write a claimed (running) snapshot; the row ends succeeded, failed or cancelled.

    The files are written into a fresh ``.<name>.partial-*`` folder beside ``out_dir`` and moved in
    only once complete, so an export killed half-way (its worker gone) leaves no half-written
    snapshot, and its restart (the sweep's, or a lead's retry) starts clean. Every write to the row
    is tied to this claim (``started_at``): a worker that hung while the sweep restarted its export
    elsewhere cannot overwrite the new attempt's row.
    """
    from training.export import ExportSettings, run_export
    from jobs.rows import finish

    claimed_at = snapshot.started_at or Snapshot.objects.values_list("started_at", flat=True).get(pk=snapshot.pk)
    items, load = export_items(snapshot)
    try:
        # Checked again here: the row may predate the roots, or the roots may have changed since.
        settings = confined_export_settings(ExportSettings.from_dict(snapshot.render_settings))
    except (SettingsError, PathError) as e:
        finish(Snapshot, snapshot.pk, JobStatus.FAILED, claimed_at=claimed_at, message="Failed", error=str(e))
        snapshot.refresh_from_db()
        return snapshot
    out_dir = Path(snapshot.out_dir)
    partial = partial_dir(out_dir)
    try:
        with Heartbeat(snapshot.pk, heartbeat, claimed_at):
            result = run_export(items, settings, partial, load_documents=load,
                                cache_for=DbRenderCache, snapshot_meta={"content_hash": snapshot.content_hash},
                                on_progress=ProgressWriter(snapshot, echo))
        if Snapshot.objects.filter(pk=snapshot.pk, status=JobStatus.RUNNING, started_at=claimed_at).exists():
            move_into(partial, out_dir)
    except ExportCancelled:
        finish(Snapshot, snapshot.pk, JobStatus.CANCELLED, claimed_at=claimed_at, message="Cancelled")
        snapshot.refresh_from_db()
        return snapshot
    except Exception as e:  # the row is the record: say what failed, then let Celery log it
        finish(Snapshot, snapshot.pk, JobStatus.FAILED, claimed_at=claimed_at, message="Failed",
               error=f"{type(e).__name__}: {e}")
        snapshot.refresh_from_db()
        raise
    finally:
        _remove(partial)
    finish(Snapshot, snapshot.pk, JobStatus.SUCCEEDED, claimed_at=claimed_at, progress=1.0, item_count=result.items,
           sample_count=result.samples, audit=result.audit, audit_errors=result.audit["errors"],
           message=(f"{result.samples} samples from {result.items} items ({result.rendered} rendered, "
                    f"{result.items - result.rendered} from the cache)"))
    snapshot.refresh_from_db()
    return snapshot


PARTIAL_KEEP = 3600  # seconds: a partial folder untouched this long belongs to an export that died


def partial_dir(out_dir: Path) -> Path:
    """A fresh folder beside ``out_dir`` for one attempt's files; old attempts' leftovers are removed."""
    import time
    import uuid

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for old in out_dir.parent.glob(f".{out_dir.name}.partial-*"):
        try:
            if time.time() - old.stat().st_mtime > PARTIAL_KEEP:
                _remove(old)
        except OSError:
            pass
    return out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:12]}"


def move_into(partial: Path, out_dir: Path) -> None:
    """Move a finished export's files into ``out_dir``, each file replaced in one rename (a folder
    such as ``hf/`` is renamed in after the old one is moved aside). Other files in ``out_dir``
    (a CLI user's folder) are left alone."""
    import os
    import uuid

    out_dir.mkdir(parents=True, exist_ok=True)
    written = {p.name for p in partial.iterdir()}
    for old in out_dir.glob("*.jsonl"):  # a split the new export no longer has
        if old.name not in written:
            old.unlink(missing_ok=True)
    for entry in sorted(partial.iterdir()):
        target = out_dir / entry.name
        if entry.is_dir():
            if target.exists():
                aside = out_dir / f".{entry.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(target, aside)
                _remove(aside)
            os.replace(entry, target)
        else:
            if target.is_dir():
                _remove(target)
            os.replace(entry, target)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink(missing_ok=True)


def request_cancel(snapshot: Snapshot, user) -> str:
    """A lead stops a queued or running export: 'cancelled', 'cancelling' or 'finished'."""
    from jobs import rows

    permissions.require_role(user, snapshot.project, permissions.LEAD)
    outcome = rows.request_cancel(snapshot)
    snapshot.refresh_from_db()
    return outcome
