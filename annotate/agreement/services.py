"""Overlap and agreement on the database: versions made, claimed blind, opened, and measured.

See annotate.agreement.models for the data model; annotate.agreement.figures for the figures.
"""

from __future__ import annotations

import hashlib

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotate import permissions
from annotate.agreement.figures import StepRating, Version, agreement
from annotate.agreement.models import AgreementReport, OverlapSettings, OverlapVersion
from annotate.ingest.writer import write_trajectories
from annotate.models import Project, Step, StepLabel, Trajectory
from annotate.workbench.documents import current_document

SUBMITTED_STATUSES = (Trajectory.SUBMITTED, Trajectory.APPROVED)


def settings_for(project: Project) -> OverlapSettings:
    return OverlapSettings.objects.get_or_create(project=project)[0]


def canonical(qs):
    """``qs`` without the annotators' version copies: the items a dataset, a snapshot or a count takes."""
    return qs.exclude(Exists(OverlapVersion.objects.filter(copy_id=OuterRef("pk"))))


def is_sampled(trajectory_id: int, share: float, seed: int) -> bool:
    """Whether a trajectory is in the overlap sample: a stable hash of (seed, id) below ``share``."""
    if share >= 1:
        return True
    digest = hashlib.sha256(f"{seed}:{trajectory_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def create_versions(project: Project, *, limit: int | None = None, batch: int = 500) -> int:
    """Make the N versions of every sampled, not yet overlapped trajectory (idempotent); returns how many items.

    Each version is written by the import's writer from the original's current document (turns,
    steps, labels, the search index), as a draft at version 1, unassigned.
    """
    conf = settings_for(project)
    if not conf.enabled:
        return 0
    originals = (canonical(project.trajectories.all())
                 .exclude(Exists(OverlapVersion.objects.filter(original_id=OuterRef("pk")))).order_by("id"))
    chosen = [pk for pk in originals.values_list("id", flat=True) if is_sampled(pk, conf.share, conf.seed)]
    if limit is not None:
        chosen = chosen[:limit]
    for start in range(0, len(chosen), batch):
        rows = list(Trajectory.objects.filter(pk__in=chosen[start:start + batch]).order_by("id"))
        docs = [current_document(t) for t in rows]
        with transaction.atomic():
            links = []
            for slot in range(1, conf.annotators + 1):
                copies = write_trajectories(project, docs, ids_only=True)
                links += [OverlapVersion(original_id=t.pk, copy_id=c, slot=slot) for t, c in zip(rows, copies)]
            OverlapVersion.objects.bulk_create(links)
    return len(chosen)


def claim_version(user, project: Project) -> Trajectory | None:
    """Give ``user`` an unassigned version of an original they hold no version of (a conditional
    update, so two annotators never claim the same one); their own open version first."""
    own = (OverlapVersion.objects.filter(original__project=project, annotator=user,
                                         copy__status__in=(Trajectory.DRAFT, Trajectory.REJECTED))
           .order_by("original_id").first())
    if own is not None:
        return own.copy
    held = OverlapVersion.objects.filter(annotator=user).values("original_id")
    for _ in range(5):  # a claim can lose a race; try the next one
        candidate = (OverlapVersion.objects.filter(original__project=project, annotator__isnull=True)
                     .exclude(original_id__in=held).order_by("original_id", "slot").first())
        if candidate is None:
            return None
        with transaction.atomic():
            if OverlapVersion.objects.filter(pk=candidate.pk, annotator__isnull=True).update(
                    annotator=user, assigned_at=timezone.now()) == 1:
                Trajectory.objects.filter(pk=candidate.copy_id).update(assignee=user)
                return Trajectory.objects.get(pk=candidate.copy_id)
    return None


def may_open(user, trajectory: Trajectory) -> bool:
    """Blind: an annotator opens only their own version of an overlapped item; leads open all."""
    version = OverlapVersion.objects.filter(copy_id=trajectory.pk).only("annotator_id").first()
    if version is None:
        return True
    if permissions.role_in(user, trajectory.project) in (permissions.LEAD, permissions.ADMIN):
        return True
    return version.annotator_id == user.pk


def require_open(user, trajectory: Trajectory) -> None:
    """403 unless ``may_open`` (the editor, its history, its API all call it)."""
    if not may_open(user, trajectory):
        raise PermissionDenied("This is another annotator's version of an overlapped item (blind until adjudication).")


def visible_to(qs, user, project: Project):
    """``qs`` without the version copies ``user`` may not see (everyone's but their own; leads see all).

    A correlated NOT EXISTS on the copy's unique index: a queue page walks its rows in order and
    probes each one, where ``NOT IN (every hidden copy)`` would first read all of them.
    """
    if permissions.role_in(user, project) in (permissions.LEAD, permissions.ADMIN):
        return qs
    others = OverlapVersion.objects.filter(copy_id=OuterRef("pk")).exclude(annotator_id=user.pk)
    return qs.exclude(Exists(others))


def collect_items(project: Project) -> dict:
    """``{original_id: {annotator: Version}}`` from the submitted (or approved) versions."""
    versions = (OverlapVersion.objects.filter(original__project=project, annotator__isnull=False,
                                              copy__status__in=SUBMITTED_STATUSES)
                .select_related("annotator", "copy"))
    by_copy = {v.copy_id: v for v in versions}
    labels: dict[int, set] = {}
    for step_id, label in StepLabel.objects.filter(trajectory_id__in=list(by_copy)).values_list("step_id", "label"):
        labels.setdefault(step_id, set()).add(label)
    steps: dict[int, list] = {}
    for s in Step.objects.filter(trajectory_id__in=list(by_copy)).order_by("trajectory_id", "turn_index", "position"):
        steps.setdefault(s.trajectory_id, []).append(StepRating(
            s.turn_index, s.position, s.call_id, frozenset(labels.get(s.pk, ())), kind=s.kind, name=s.name,
            arguments=s.arguments if s.kind == "tool_call" else None))
    items: dict = {}
    for copy_id, v in by_copy.items():
        items.setdefault(v.original_id, {})[v.annotator.username] = Version(
            steps.get(copy_id, []), case_types=tuple(v.copy.case_types or ()))
    return items


def compute_report(project: Project, *, rounds: int = 200) -> AgreementReport:
    """Compute the project's figures now and keep them as its newest report."""
    items = collect_items(project)
    labels = [lab["name"] if isinstance(lab, dict) else str(lab) for lab in project.error_labels]
    figures = agreement(items, labels, rounds=rounds, seed=settings_for(project).seed)
    return AgreementReport.objects.create(project=project, status=AgreementReport.DONE, figures=figures,
                                          finished_at=timezone.now())


def latest_report(project: Project) -> AgreementReport | None:
    return project.agreement_reports.filter(status=AgreementReport.DONE).first()



def plain_drafts(project: Project):
    """The project's trajectories an annotator may claim as plain work: neither a version copy nor the
    original of an overlapped item (its versions are the work; adjudication writes the original)."""
    return canonical(project.trajectories.all()).exclude(
        Exists(OverlapVersion.objects.filter(original_id=OuterRef("pk"))))
