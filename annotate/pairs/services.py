"""Writing preference pairs: fork, save, review, suggestions from corrections, import, dashboard.

The thin Django shell around the pure ``annotate.pairs`` modules that the pages, the API and the CLI share. Every
function takes the acting user and leaves the permission check to its caller (the views ask
``annotate.permissions``; the CLI acts as an operator).

Suggestions from corrections are computed lazily from revisions, not in the save path: the
workbench's step save has a tight latency budget and may bypass ``replace_document``, but every
save of every path writes a ``Revision``. Comparing a trajectory's first revision (the original)
with its latest gives the net correction, so an annotator's intermediate saves never produce a
suggestion each. ``refresh_suggestions`` only looks at trajectories whose version moved since it
last looked (``SuggestionScan``), so opening the suggestions page costs what changed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from django.db import transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from annotate.models import Revision, Trajectory
from annotate.pairs import core
from annotate.pairs.corrections import correction_author, suggest_from_revisions
from annotate.pairs.models import Pair, PairSuggestion, SuggestionScan, categories_for
from annotate.pairs.records import parse_candidates
from annotate.permissions import author_of
from annotate.workbench.documents import keep_original, lock_version
from annotate.trajectory import Trajectory as CanonicalTrajectory
from core.errors import InputError


def current_revision(trajectory: Trajectory) -> Revision | None:
    return trajectory.revisions.filter(version=trajectory.version).first()


def pin_current_revision(trajectory: Trajectory) -> Revision:
    """The revision of the trajectory's current version, written from its rows if it has none yet."""
    with transaction.atomic():
        version = lock_version(trajectory.pk)
        keep_original(trajectory.pk, version)
        return trajectory.revisions.get(version=version)


def fork_trajectory(trajectory: Trajectory, turn: int, step: int, **kw) -> tuple[core.Pair, Revision | None]:
    """A new pure pair cut from the trajectory's current revision (both sides: its own continuation)."""
    revision = current_revision(trajectory)
    doc = (CanonicalTrajectory.from_dict(revision.document) if revision is not None
           else trajectory.to_canonical())
    return core.fork(doc, turn, step, **kw), revision


def save_pair(project, pair: core.Pair, *, user, row: Pair | None = None, trajectory=None,
              revision=None) -> Pair:
    """Create (or update ``row``) after checking ``pair_errors``; raise the first ``PairError``.

    Editing an approved or rejected pair sends it back to draft: it needs a fresh review.
    """
    core.label_rejected(pair)
    core.check_pair(pair, categories_for(project))
    now = timezone.now()
    if row is None:
        if trajectory is not None and revision is None:  # (an unchanged import: pin its version 1)
            revision = pin_current_revision(trajectory)
        row = Pair(project=project, trajectory=trajectory, revision=revision, author=author_of(user),
                   created_at=now)
    row.set_core(pair)
    row.updated_at = now
    if row.pk is not None and row.status != Pair.DRAFT:
        row.status, row.reviewer, row.reviewed_at = Pair.DRAFT, None, None
    row.save()
    return row


def review_pair(row: Pair, status: str, *, user, note: str | None = None) -> Pair:
    """Approve or reject (or send back to draft). Approval re-checks the pair first."""
    if status not in (Pair.APPROVED, Pair.REJECTED, Pair.DRAFT):
        raise core.PairError(f"unknown status {status!r}; use approved, rejected or draft", "status")
    if status == Pair.APPROVED:
        core.check_pair(row.to_core(), categories_for(row.project))
    row.status = status
    row.reviewer = author_of(user) if status != Pair.DRAFT else None
    row.reviewed_at = timezone.now() if status != Pair.DRAFT else None
    fields = ["status", "reviewer", "reviewed_at"]
    if note is not None:
        row.note = note
        fields.append("note")
    row.save(update_fields=fields)
    return row


# Suggestions from corrections -------------------------------------------------------------------


def refresh_suggestions(project) -> int:
    """Re-scan the trajectories edited since the last scan; return how many were scanned."""
    # The ids first: scanning writes the scan markers this query reads.
    stale = list(project.trajectories.filter(version__gt=1)
                 .exclude(suggestion_scan__version=F("version")).values_list("id", "version"))
    for start in range(0, len(stale), SCAN_CHUNK):
        _scan(project, dict(stale[start:start + SCAN_CHUNK]))
    return len(stale)


SCAN_CHUNK = 100


def _scan(project, versions: dict[int, int]) -> None:
    """Suggestions for a chunk of trajectories (``{id: version}``): a few queries per chunk, not per row."""
    firsts = dict(Revision.objects.filter(trajectory_id__in=list(versions)).values("trajectory_id")
                  .annotate(lo=Min("version")).values_list("trajectory_id", "lo"))
    wanted = Q(pk__in=[])
    for tid, version in versions.items():
        if firsts.get(tid, version) < version:
            wanted |= Q(trajectory_id=tid, version__in=(firsts[tid], version))
    docs: dict[tuple[int, int], tuple[dict, int | None]] = {
        (tid, v): (doc, author) for tid, v, doc, author in
        Revision.objects.filter(wanted).values_list("trajectory_id", "version", "document", "author_id")}
    found: dict[int, dict[str, core.Pair]] = {}
    # Credit the annotator whose edit it is, not whoever moved the status last (the approving lead).
    history: dict[int, list] = {}
    for tid, v, status, author in (Revision.objects.filter(trajectory_id__in=list(versions))
                                   .order_by("trajectory_id", "version")
                                   .values_list("trajectory_id", "version", "status", "author_id")):
        history.setdefault(tid, []).append((v, status, author))
    authors: dict[int, int | None] = {}
    for tid, version in versions.items():
        before, after = docs.get((tid, firsts.get(tid, version))), docs.get((tid, version))
        found[tid] = {}
        if before is None or after is None or firsts[tid] == version:
            continue
        pairs = suggest_from_revisions(CanonicalTrajectory.from_dict(before[0]),
                                            CanonicalTrajectory.from_dict(after[0]))
        found[tid] = {p.content_key(): p for p in pairs}
        authors[tid] = correction_author(history.get(tid, []))
    existing = list(PairSuggestion.objects.filter(trajectory_id__in=list(versions))
                    .values_list("id", "trajectory_id", "key", "status"))
    # Pending suggestions follow the latest correction; decided ones stay decided (and are not re-suggested).
    stale = [pk for pk, tid, key, status in existing if status == PairSuggestion.PENDING and key not in found[tid]]
    known = {(tid, key) for _, tid, key, _ in existing}
    new = [PairSuggestion(project=project, trajectory_id=tid, base_version=firsts[tid], version=versions[tid],
                          cut_turn=p.cut[0], cut_step=p.cut[1], context=p.context.to_dict(),
                          chosen=[s.to_dict() for s in p.chosen], rejected=[s.to_dict() for s in p.rejected],
                          category=p.category, key=key, corrected_by_id=authors.get(tid))
           for tid, by_key in found.items() for key, p in by_key.items() if (tid, key) not in known]
    with transaction.atomic():
        PairSuggestion.objects.filter(pk__in=stale).delete()
        PairSuggestion.objects.bulk_create(new)
        SuggestionScan.objects.filter(trajectory_id__in=list(versions)).delete()
        SuggestionScan.objects.bulk_create([SuggestionScan(trajectory_id=tid, version=v) for tid, v in versions.items()])


@dataclass
class Decision:
    accepted: list[Pair] = field(default_factory=list)
    dismissed: int = 0
    errors: list[dict] = field(default_factory=list)


def decide_suggestions(project, ids, action: str, *, user) -> Decision:
    """Accept (→ an approved pair, reviewed by ``user``) or dismiss pending suggestions, one or many.

    A suggestion that fails the pair checks is left pending and reported, the others proceed.
    """
    if action not in ("accept", "dismiss"):
        raise core.PairError(f"unknown action {action!r}; use accept or dismiss", "action")
    out = Decision()
    categories = categories_for(project)
    qs = project.pair_suggestions.filter(pk__in=list(ids), status=PairSuggestion.PENDING).select_related("trajectory")
    now = timezone.now()
    for s in qs:
        if action == "dismiss":
            s.status, s.decided_by, s.decided_at = PairSuggestion.DISMISSED, author_of(user), now
            s.save(update_fields=["status", "decided_by", "decided_at"])
            out.dismissed += 1
            continue
        pair = core.label_rejected(s.to_core())
        errors = core.pair_errors(pair, categories)
        if errors:
            out.errors.append({"suggestion": s.pk, "field": errors[0].field, "message": errors[0].message})
            continue
        with transaction.atomic():
            row = project.pairs.filter(content_key=pair.content_key()).first()
            if row is None:
                revision = s.trajectory.revisions.filter(version=s.version).first()  # (a change: it has one)
                row = Pair(project=project, trajectory=s.trajectory, revision=revision, author=s.corrected_by,
                           created_at=now, updated_at=now)
                row.set_core(pair)
            row.status, row.reviewer, row.reviewed_at = Pair.APPROVED, author_of(user), now
            row.save()
            s.status, s.decided_by, s.decided_at, s.pair = PairSuggestion.ACCEPTED, author_of(user), now, row
            s.save(update_fields=["status", "decided_by", "decided_at", "pair"])
        out.accepted.append(row)
    return out


# Imported preference data -----------------------------------------------------------------------


@dataclass
class PairImport:
    created: int = 0
    duplicates: int = 0
    errors: list[dict] = field(default_factory=list)
    # Records left out under skip_invalid (the first MAX_LISTED are listed in ``errors``).
    skipped: int = 0
    formats: list[str] = field(default_factory=list)


def import_candidates(project, data: bytes, filename: str, *, user, skip_invalid: bool = False,
                      override: str = "") -> PairImport:
    """Preference records (candidates, When2Call, ToolBench trees; see ``annotate.pairs.records.pairs_from_record``)
    → draft pairs, all-or-nothing unless ``skip_invalid``; known content is skipped.

    Rejected sides are kept as written, their problems stored as labels on their steps; ``override``
    (a lead's reason) keeps chosen sides that fail validation, recorded on each pair.
    """
    result = parse_candidates(data, filename, categories_for(project), skip_invalid=skip_invalid,
                              override=override.strip())
    if result.errors and not skip_invalid:
        return PairImport(errors=result.errors, formats=list(result.formats))
    if not result.pairs:
        errors = result.errors or [{"file": filename, "line": None, "field": "",
                                    "message": "the file holds no preference records"}]
        return PairImport(errors=errors, skipped=result.skipped,
                          formats=list(result.formats))
    out = PairImport(errors=result.errors, skipped=result.skipped,
                     formats=list(result.formats))
    now = timezone.now()
    with transaction.atomic():
        known = set(project.pairs.values_list("content_key", flat=True))
        rows = []
        for _, pair in result.pairs:
            key = pair.content_key()
            if key in known:
                out.duplicates += 1
                continue
            known.add(key)
            row = Pair(project=project, author=author_of(user), created_at=now, updated_at=now)
            row.set_core(pair)
            rows.append(row)
        Pair.objects.bulk_create(rows)
        out.created = len(rows)
    return out


# Dashboard and export selection ---------------------------------------------------------------


def dashboard(project) -> dict:
    """Counts by category × status, by source, and the categories that still have no approved pair."""
    categories = categories_for(project)
    rows = project.pairs.values_list("category", "status").annotate(n=Count("id")).order_by()
    by_cat: dict[str, Counter] = {k: Counter() for k in categories}
    for cat, status, n in rows:
        by_cat.setdefault(cat, Counter())[status] += n
    by_source = dict(project.pairs.values_list("source").annotate(n=Count("id")).order_by())
    by_status = dict(project.pairs.values_list("status").annotate(n=Count("id")).order_by())
    table = []
    for key, counts in by_cat.items():
        c = categories.get(key) or core.Category(key, key, "", "")
        table.append({"key": key, "name": c.name, "description": c.description,
                      "draft": counts["draft"], "approved": counts["approved"], "rejected": counts["rejected"],
                      "total": sum(counts.values())})
    return {
        "categories": table,
        "by_source": [{"source": s, "name": label, "n": by_source.get(s, 0)} for s, label in Pair.SOURCE_CHOICES],
        "by_status": [{"status": s, "name": label, "n": by_status.get(s, 0)} for s, label in Pair.STATUS_CHOICES],
        "missing": [r["key"] for r in table if r["approved"] == 0 and r["key"] != "other"],
        "total": sum(by_status.values()),
        "pending_suggestions": project.pair_suggestions.filter(status=PairSuggestion.PENDING).count(),
    }


def pair_documents(project, filters: dict | None = None) -> list[tuple[dict, int]]:
    """``(document, pair id)`` of the pairs a DPO snapshot pins, in a stable order (``Pair.to_document()``).

    Reads the snapshot's selection: ``status`` approved (default) takes approved pairs, ``submitted``
    or ``any`` takes drafts too (never rejected pairs); ``splits`` and ``case_types`` match the
    source trajectory's, as kept in the pair's context; ``ids`` names source trajectories.
    """
    filters = filters or {}
    qs = project.pairs.exclude(status=Pair.REJECTED).order_by("id")
    if (filters.get("status") or "approved") == "approved":
        qs = qs.filter(status=Pair.APPROVED)
    if filters.get("ids"):
        qs = qs.filter(trajectory_id__in=filters["ids"])
    if filters.get("categories"):
        qs = qs.filter(category__in=filters["categories"])
    if filters.get("sources"):
        qs = qs.filter(source__in=filters["sources"])
    out = []
    for row in qs.iterator(chunk_size=500):
        doc = row.to_document()
        meta = doc["context"].get("meta") or {}
        if filters.get("splits") and (meta.get("split") or "train") not in filters["splits"]:
            continue
        if filters.get("case_types") and not set(filters["case_types"]) & set(meta.get("case_types") or []):
            continue
        out.append((doc, row.pk))
    return out


class ExportError(InputError):
    """A DPO export that cannot start (no approved pairs, bad render settings...)."""


# The DPO export is a snapshot, which is training's: the data flows annotate -> training, so
# training registers how to make one (``training.dpo_pairs``, from its ``AppConfig.ready``) and
# the pairs pages, API and CLI call it through here without importing training.
@dataclass(frozen=True)
class DpoExport:
    # ``create(project, documents, *, user, render_settings, splits, name, out_dir, enqueue)``: the
    # snapshot row pinning ``documents`` (``(document, pair id)``); raises ``ExportError``.
    create: Callable[..., Any]
    # ``run_now(snapshot)``: export a snapshot created with ``enqueue=False`` in this process; the row, refreshed.
    run_now: Callable[[Any], Any]


_dpo_export: DpoExport | None = None


def register_dpo_export(export: DpoExport) -> None:
    global _dpo_export
    _dpo_export = export


def _registered_export() -> DpoExport:
    if _dpo_export is None:
        raise ExportError("DPO export needs the training app, which is not installed")
    return _dpo_export


def export_pairs(project, *, user, render_settings: dict | None = None, categories=None, sources=None,
                 splits=None, name: str = "", out_dir=None, enqueue: bool = True):
    """Queue a DPO snapshot of the approved pairs (optionally of some categories / sources / splits)."""
    filters = {"status": "approved", "categories": list(categories or []), "sources": list(sources or []),
               "splits": list(splits or [])}
    documents = pair_documents(project, filters)
    if not documents:
        what = f" in {', '.join(filters['categories'])}" if filters["categories"] else ""
        raise ExportError(f"there are no approved pairs{what} to export: approve some first")
    return _registered_export().create(project, documents, user=user, render_settings=render_settings,
                                       splits=filters["splits"], name=name, out_dir=out_dir, enqueue=enqueue)


def run_export_now(snapshot):
    """Export a snapshot made by ``export_pairs(..., enqueue=False)`` here and now (the CLI's ``--wait``)."""
    return _registered_export().run_now(snapshot)
