"""What a snapshot takes: the selection of trajectories (pinned to their current revisions) or of pairs.

A ``Selection`` is the filters a view, the API or the CLI sends; ``select_trajectories`` turns it
into the matching trajectories and ``pin_revisions`` into the revisions a snapshot keeps. DPO
snapshots pin preference pairs, which the pairs app hands over: as ``pairs=[PinnedPair(...)]`` to
``create_snapshot``, or through a selector registered once with ``register_pair_selector(fn)``,
where ``fn(project, filters) -> iterable of PinnedPair`` (training imports nothing of the pairs app).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable, Iterable

from django.db.models import F, Q

from annotate import permissions
from annotate.adjudication.service import unadjudicated_ids
from annotate.agreement.services import canonical
from annotate.models import Project, Revision, StepLabel, Trajectory, documents_of
from annotate.workbench.documents import implied_revision
from annotate.trajectory import CASE_TYPES, SPLITS
from core.errors import InputError

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
    # Leave out trajectories whose versions disagree and that no lead adjudicated at their current
    # version (annotate.adjudication); the adjudicated ones are pinned at that version.
    require_adjudicated: bool = False

    @classmethod
    def from_dict(cls, d: dict | None) -> "Selection":
        d = dict(d or {})
        status = d.get("status") or "approved"
        if not isinstance(status, str) or status not in STATUS_FILTERS:  # a list here was a 500 (the API fuzz)
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
                   ids=tuple(sorted(set(ids))), require_adjudicated=_flag(d.get("require_adjudicated")))

    def to_dict(self) -> dict:
        d: dict = {"status": self.status}
        for name in ("splits", "case_types", "labels", "projects", "ids"):
            if getattr(self, name):
                d[name] = list(getattr(self, name))
        if self.require_adjudicated:
            d["require_adjudicated"] = True
        return d


def _flag(value) -> bool:
    if value in (None, "", False, "false", "0", "off"):
        return False
    if value in (True, "true", "1", "on"):
        return True
    raise SnapshotError("must be true or false", "require_adjudicated")


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
    qs = canonical(Trajectory.objects.filter(project__in=projects))  # (never the overlap version copies)
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
    if selection.require_adjudicated:
        qs = qs.exclude(pk__in=unadjudicated_ids(qs))
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


