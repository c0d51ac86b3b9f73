"""The export job, worker side (also the CLI): claim a queued snapshot, render and write its files
through ``training.export.run_export`` with the render cache in the database, beat and report
progress on the row, stop when a lead cancels, and swap the finished files into place.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from django.db import DatabaseError, connection

from annotate.adjudication.service import included_agreement
from annotate.models import Revision
from jobs import rows as job_rows
from training.export import ExportItem, ExportSettings, SettingsError, run_export
from training.models import JobStatus, Snapshot
from training.roots import PathError, confined_export_settings
from training.snapshots.models import RenderCacheEntry

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
        if self.echo is not None:
            self.echo(fraction, message)
        if EXPORT_STEP_DELAY:  # tests: an export that runs long enough to be killed mid-way
            time.sleep(EXPORT_STEP_DELAY)
        now = time.monotonic()
        if now - self._last < self.every and fraction < 1.0:
            return
        self._last = now
        if not job_rows.beat(Snapshot, self.snapshot.pk, claimed_at=self.claimed_at, progress=round(fraction, 4),
                    message=message[:500]):
            raise ExportCancelled("the snapshot is no longer running")
        if Snapshot.objects.filter(pk=self.snapshot.pk, cancel_requested=True).exists():
            raise ExportCancelled("cancelled by a lead")


class Heartbeat:
    """Beats the row every few seconds from a thread while the export works in long stretches
    (writing a large dataset), so the stale-job sweep never mistakes a busy export for a dead one."""

    def __init__(self, pk: int, every: float = 5.0, claimed_at=None):
        self.pk, self.every, self.claimed_at = pk, every, claimed_at
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"snapshot-{pk}-heartbeat", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    job_rows.beat(Snapshot, self.pk, claimed_at=self.claimed_at)
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
    return job_rows.claim(Snapshot, snapshot_id, worker_pid=os.getpid(), message="starting")


def run_snapshot_export(snapshot: Snapshot, echo: Callable[[float, str], None] | None = None,
                        heartbeat: float = 5.0) -> Snapshot:
    """Render and write a claimed (running) snapshot; the row ends succeeded, failed or cancelled.

    The files are written into a fresh ``.<name>.partial-*`` folder beside ``out_dir`` and moved in
    only once complete, so an export killed half-way (its worker gone) leaves no half-written
    snapshot, and its restart (the sweep's, or a lead's retry) starts clean. Every write to the row
    is tied to this claim (``started_at``): a worker that hung while the sweep restarted its export
    elsewhere cannot overwrite the new attempt's row.
    """
    claimed_at = snapshot.started_at or Snapshot.objects.values_list("started_at", flat=True).get(pk=snapshot.pk)
    items, load = export_items(snapshot)
    try:
        # Checked again here: the row may predate the roots, or the roots may have changed since.
        settings = confined_export_settings(ExportSettings.from_dict(snapshot.render_settings))
    except (SettingsError, PathError) as e:
        job_rows.finish(Snapshot, snapshot.pk, JobStatus.FAILED, claimed_at=claimed_at, message="Failed",
                          error=str(e))
        snapshot.refresh_from_db()
        return snapshot
    out_dir = Path(snapshot.out_dir)
    partial = partial_dir(out_dir)
    try:
        with Heartbeat(snapshot.pk, heartbeat, claimed_at):
            result = run_export(items, settings, partial, load_documents=load,
                                cache_for=DbRenderCache, snapshot_meta={"content_hash": snapshot.content_hash},
                                on_progress=ProgressWriter(snapshot, echo))
        agreement = included_agreement(list(snapshot.items.values_list("revision__trajectory_id",
                                                                       "revision__version")), snapshot.project)
        if agreement["overlapped"]:  # the audit reports the agreement of the overlapped items it includes
            result.audit["agreement"] = agreement
            (partial / "audit.json").write_text(
                json.dumps(result.audit, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if Snapshot.objects.filter(pk=snapshot.pk, status=JobStatus.RUNNING, started_at=claimed_at).exists():
            move_into(partial, out_dir)
    except ExportCancelled:
        job_rows.finish(Snapshot, snapshot.pk, JobStatus.CANCELLED, claimed_at=claimed_at, message="Cancelled")
        snapshot.refresh_from_db()
        return snapshot
    except Exception as e:  # the row is the record: say what failed, then let Celery log it
        job_rows.finish(Snapshot, snapshot.pk, JobStatus.FAILED, claimed_at=claimed_at, message="Failed",
               error=f"{type(e).__name__}: {e}")
        snapshot.refresh_from_db()
        raise
    finally:
        _remove(partial)
    job_rows.finish(Snapshot, snapshot.pk, JobStatus.SUCCEEDED, claimed_at=claimed_at, progress=1.0,
                      item_count=result.items, sample_count=result.samples, audit=result.audit,
                      audit_errors=result.audit["errors"],
                      message=(f"{result.samples} samples from {result.items} items ({result.rendered} rendered, "
                               f"{result.items - result.rendered} from the cache)"))
    snapshot.refresh_from_db()
    return snapshot


PARTIAL_KEEP = 3600  # seconds: a partial folder untouched this long belongs to an export that died


def partial_dir(out_dir: Path) -> Path:
    """A fresh folder beside ``out_dir`` for one attempt's files; old attempts' leftovers are removed."""
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
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink(missing_ok=True)

