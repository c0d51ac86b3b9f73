"""Adjudicating a trajectory: the versions a lead compares, and saving the decision.

Where versions come from is pluggable (``register_version_source``): overlap (each annotator's
blind version) registers its source; until then, and for a trajectory outside overlap, the
versions are each author's latest revision of it. Callers check the lead role first.
"""

from __future__ import annotations

from typing import Callable

from django.db import transaction
from django.db.models import Count

from annotate.adjudication.compare import (AdjudicationError, StepRow, adjudicate, below_threshold, compare,
                                          rating_version)
from annotate.agreement.figures import item_agreement
from annotate.adjudication.models import Adjudication
from annotate.agreement.models import OverlapSettings, OverlapVersion
from annotate.models import Revision, Trajectory
from annotate.trajectory import Trajectory as CanonicalTrajectory
from annotate.workbench.documents import current_document, lock_version, replace_document

# f(trajectory) -> {name: (ref, document)} or None (not its business); the first answer wins.
VersionSource = Callable[[Trajectory], "dict[str, tuple[str, CanonicalTrajectory]] | None"]
_SOURCES: list[VersionSource] = []


def register_version_source(source: VersionSource) -> None:
    """Let overlap (or any other app) say which versions of a trajectory a lead adjudicates."""
    if source not in _SOURCES:
        _SOURCES.insert(0, source)


def authors_latest(trajectory: Trajectory) -> dict[str, tuple[str, CanonicalTrajectory]]:
    """Each author's latest revision of ``trajectory`` (a revision with no author is skipped)."""
    out: dict[str, tuple[str, CanonicalTrajectory]] = {}
    for rev in trajectory.revisions.select_related("author").exclude(author=None).order_by("-version"):
        name = rev.author.get_username()
        if name not in out:
            out[name] = (f"revision {rev.version}", CanonicalTrajectory.from_dict(rev.document))
    return dict(sorted(out.items()))


def overlap_versions(trajectory: Trajectory) -> dict[str, tuple[str, CanonicalTrajectory]] | None:
    """The submitted blind versions of an overlapped trajectory (None: it has no overlap versions)."""
    links = list(OverlapVersion.objects.filter(original=trajectory).select_related("copy", "annotator")
                 .order_by("slot"))
    if not links:
        return None
    out = {}
    for link in links:
        if link.submitted_at is None:
            continue  # not submitted yet: not a version to judge (nor is it final)
        name = link.annotator.get_username() if link.annotator else f"slot {link.slot}"
        out[name] = (f"version #{link.copy_id} v{link.copy.version}", current_document(link.copy))
    return out


def versions_of(trajectory: Trajectory) -> dict[str, tuple[str, CanonicalTrajectory]]:
    overlapped = overlap_versions(trajectory)
    if overlapped is not None:
        return overlapped
    for source in _SOURCES:
        found = source(trajectory)
        if found is not None:
            return found
    return authors_latest(trajectory)


def comparison(trajectory: Trajectory) -> tuple[dict[str, tuple[str, CanonicalTrajectory]], list[StepRow]]:
    versions = versions_of(trajectory)
    return versions, compare({name: doc for name, (_, doc) in versions.items()})


def threshold_of(project) -> float | None:
    overlap = OverlapSettings.objects.filter(project=project).first()
    return overlap.threshold if overlap is not None else None


def needs_adjudication(trajectory: Trajectory) -> bool:
    """Two or more versions that differ, their agreement under the project's threshold (where
    overlap sets one), and no adjudication at the current version."""
    versions, rows = comparison(trajectory)
    if len(versions) < 2 or not any(r.differs for r in rows):
        return False
    threshold = threshold_of(trajectory.project)
    docs = {n: d for n, (_, d) in versions.items()}
    if threshold is not None and not below_threshold(docs, trajectory.project.label_names(), threshold):
        return False
    return not Adjudication.objects.filter(trajectory=trajectory, version=trajectory.version).exists()


def decide(trajectory: Trajectory, choices: list[dict], *, user, base_version: int) -> Adjudication:
    """Build the adjudicated document from ``choices`` ([{turn, step (0-based), pick | drop,
    merge_labels}]) and save it as the trajectory's document, with its provenance."""
    versions = versions_of(trajectory)
    keyed = {}
    for c in choices:
        keyed[(c["turn"], c["step"])] = {k: c[k] for k in ("pick", "drop", "merge_labels") if k in c}
    doc, provenance = adjudicate({name: d for name, (_, d) in versions.items()}, keyed)
    with transaction.atomic():
        version = lock_version(trajectory.pk)
        if version != base_version:
            raise AdjudicationError(f"the trajectory changed since (version {version}, you compared "
                                    f"{base_version}): compare again", "base_version")
        names = ", ".join(versions)
        replace_document(trajectory, doc, user=user, base_version=version,
                         summary=f"adjudicated from {names}"[:300])
        return Adjudication.objects.create(
            trajectory=trajectory, version=trajectory.version, decided_by=user,
            sources=[{"name": n, "ref": ref} for n, (ref, _) in versions.items()],
            choices=[dict(c) for c in choices], provenance=provenance)


def latest(trajectory: Trajectory) -> Adjudication | None:
    return trajectory.adjudications.order_by("-created_at").first()



def unadjudicated_ids(trajectories) -> list[int]:
    """Of ``trajectories`` (a queryset), those whose versions disagree with no adjudication at
    their current version. Only trajectories two or more people saved can have such versions
    (overlap's source, once registered, answers for its own)."""
    candidates = set(Revision.objects.filter(trajectory__in=trajectories).exclude(author=None).values("trajectory")
                     .annotate(people=Count("author", distinct=True)).filter(people__gte=2)
                     .values_list("trajectory", flat=True))
    candidates |= set(OverlapVersion.objects.filter(original__in=trajectories).values_list("original", flat=True))
    rows = Trajectory.objects.filter(pk__in=sorted(candidates)).select_related("project").order_by("pk")
    return [t.pk for t in rows if needs_adjudication(t)]


def included_agreement(pinned: list[tuple[int, int]], project) -> dict:
    """What a snapshot's audit says of the overlapped items it includes: how many, how many at an
    adjudicated version, their mean item agreement and how many fall below the project's threshold.
    ``pinned``: (trajectory id, version) of each included item."""
    versions_pinned = dict(pinned)
    originals = set(OverlapVersion.objects.filter(original_id__in=list(versions_pinned))
                    .values_list("original_id", flat=True))
    adjudicated = {tid for tid, version in Adjudication.objects.filter(trajectory_id__in=originals)
                   .values_list("trajectory_id", "version") if versions_pinned.get(tid) == version}
    threshold, labels = threshold_of(project), project.label_names()
    values = []
    for t in Trajectory.objects.filter(pk__in=sorted(originals)):
        docs = {n: d for n, (_, d) in (overlap_versions(t) or {}).items()}
        if len(docs) >= 2:
            value = item_agreement({n: rating_version(d) for n, d in docs.items()}, labels)
            if value is not None:
                values.append(value)
    return {"overlapped": len(originals), "adjudicated": len(adjudicated), "threshold": threshold,
            "mean_item_agreement": sum(values) / len(values) if values else None,
            "below_threshold": sum(v < threshold for v in values) if threshold is not None else None}
