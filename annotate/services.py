"""Writing canonical trajectories to the database: import and save, with revisions.

Thin Django shell around the pure modules: callers hand over canonical ``Trajectory`` objects
(already parsed and validated by ``annotate.importing``); this module writes rows in bulk, in
one transaction, so an import is all-or-nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from annotate.findings import validate
from annotate.models import ImportBatch, Project, Revision, Step, StepLabel, Tool, Trajectory, Turn
from annotate.trajectory import Trajectory as CanonicalTrajectory

BATCH = 2000


@dataclass
class ImportOutcome:
    batch: ImportBatch | None
    imported: int = 0
    skipped: int = 0
    errors: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors or self.imported > 0


def get_or_create_project(slug: str, name: str | None = None) -> tuple[Project, bool]:
    """A project by slug, created with the default taxonomy when missing."""
    return Project.objects.get_or_create(slug=slug, defaults={"name": name or slug.replace("-", " ").title()})


def _title(t: CanonicalTrajectory) -> str:
    first = t.turns[0].user if t.turns else t.system
    first = " ".join(first.split())
    return first[:120] + ("…" if len(first) > 120 else "")


def _rows_for(project: Project, t: CanonicalTrajectory, now, user) -> tuple[Trajectory, list, list, list]:
    row = Trajectory(
        project=project, title=_title(t), external_id=t.meta.external_id[:300], source=t.meta.source[:300],
        system=t.system, tools=t.tools, split=t.meta.split, tags=list(t.meta.tags),
        reference=t.meta.reference, extra=dict(t.meta.extra), step_count=t.step_count(),
        finding_count=len(validate(t)), created_at=now, updated_at=now,
    )
    row.set_case_types(t.meta.case_types)
    turns = [Turn(index=i, user=turn.user) for i, turn in enumerate(t.turns)]
    steps, labels = [], []
    for ti, si, s in t.steps():
        step = Step(turn_index=ti, position=si, kind=s.kind, text=s.text, name=s.name,
                    arguments=s.arguments if s.kind == "tool_call" else None, call_id=s.call_id,
                    ok=s.ok, note=s.note, train=s.train)
        steps.append(step)
        labels.append(s.labels)
    return row, turns, steps, labels


def merge_tool_catalog(project: Project, trajectories: list[CanonicalTrajectory]) -> int:
    """Add tools the trajectories use that the project's catalog does not have yet."""
    known = set(project.tools.values_list("name", flat=True))
    new: dict[str, dict] = {}
    for t in trajectories:
        for spec in t.tools:
            if spec["name"] not in known and spec["name"] not in new:
                new[spec["name"]] = spec
    Tool.objects.bulk_create([
        Tool(project=project, name=n[:200], description=s.get("description", ""), parameters=s.get("parameters", {}))
        for n, s in new.items()
    ])
    return len(new)


def write_trajectories(project: Project, trajectories: list[CanonicalTrajectory], user=None,
                       status: str = Trajectory.DRAFT) -> list[Trajectory]:
    """Bulk-insert trajectories with their turns, steps, labels and first revision."""
    now = timezone.now()
    created: list[Trajectory] = []
    author = user if (user is not None and user.is_authenticated) else None
    for start in range(0, len(trajectories), BATCH):
        chunk = trajectories[start:start + BATCH]
        parts = [_rows_for(project, t, now, author) for t in chunk]
        rows = [p[0] for p in parts]
        for r in rows:
            r.status = status
        Trajectory.objects.bulk_create(rows)
        turns, steps, step_labels = [], [], []
        for (row, trs, sts, labs) in parts:
            for tr in trs:
                tr.trajectory_id = row.pk
            for st in sts:
                st.trajectory_id = row.pk
            turns.extend(trs)
            steps.extend(sts)
            step_labels.extend(labs)
        Turn.objects.bulk_create(turns, batch_size=5000)
        Step.objects.bulk_create(steps, batch_size=5000)
        labels = [StepLabel(step_id=st.pk, trajectory_id=st.trajectory_id, label=lab)
                  for st, labs in zip(steps, step_labels) for lab in dict.fromkeys(labs)]
        if labels:
            StepLabel.objects.bulk_create(labels, batch_size=5000)
        Revision.objects.bulk_create([
            Revision(trajectory_id=row.pk, version=1, author=author, created_at=now, summary="imported",
                     document=t.to_dict())
            for row, t in zip(rows, chunk)
        ], batch_size=2000)
        created.extend(rows)
    return created


def import_parsed(project: Project, result, *, filename: str, fmt: str, user=None) -> ImportOutcome:
    """Write an ``annotate.importing.ImportResult``: all-or-nothing unless it was parsed with skip_invalid."""
    errors = [e.to_dict() if hasattr(e, "to_dict") else dict(e) for e in result.errors]
    trajectories = [t for _, t in result.trajectories]
    with transaction.atomic():
        batch = ImportBatch.objects.create(project=project, filename=filename[:500], fmt=fmt,
                                           created_by=user if user is not None and user.is_authenticated else None,
                                           imported=len(trajectories), skipped=len(errors), errors=errors[:1000])
        if trajectories:
            merge_tool_catalog(project, trajectories)
            write_trajectories(project, trajectories, user=user)
    return ImportOutcome(batch=batch, imported=len(trajectories), skipped=len(errors), errors=errors)


def replace_document(trajectory: Trajectory, doc: CanonicalTrajectory, *, user, base_version: int,
                     summary: str = "") -> Trajectory:
    """Save a whole canonical document over ``trajectory`` if ``base_version`` is current.

    Raises ``StaleVersion`` when someone else saved in between (optimistic locking).
    """
    with transaction.atomic():
        updated = Trajectory.objects.filter(pk=trajectory.pk, version=base_version).update(
            version=base_version + 1, updated_at=timezone.now())
        if updated != 1:
            raise StaleVersion(trajectory.pk, base_version)
        trajectory.refresh_from_db()
        trajectory.system = doc.system
        trajectory.tools = doc.tools
        trajectory.split = doc.meta.split
        trajectory.tags = list(doc.meta.tags)
        trajectory.set_case_types(doc.meta.case_types)
        trajectory.step_count = doc.step_count()
        trajectory.finding_count = len(validate(doc))
        trajectory.title = trajectory.title or _title(doc)
        trajectory.save(update_fields=["system", "tools", "split", "tags", "case_types", "case_types_index",
                                       "step_count", "finding_count", "title"])
        trajectory.turns.all().delete()
        trajectory.steps.all().delete()
        _, turns, steps, labels = _rows_for(trajectory.project, doc, trajectory.updated_at, user)
        for tr in turns:
            tr.trajectory = trajectory
        for st in steps:
            st.trajectory = trajectory
        Turn.objects.bulk_create(turns)
        Step.objects.bulk_create(steps)
        StepLabel.objects.bulk_create([
            StepLabel(step_id=st.pk, trajectory=trajectory, label=lab)
            for st, labs in zip(steps, labels) for lab in dict.fromkeys(labs)
        ])
        Revision.objects.create(trajectory=trajectory, version=trajectory.version,
                                author=user if user is not None and user.is_authenticated else None,
                                summary=summary[:300], document=doc.to_dict())
    return trajectory


class StaleVersion(Exception):
    def __init__(self, pk: int, base_version: int):
        super().__init__(f"trajectory {pk} changed since version {base_version}")
        self.pk = pk
        self.base_version = base_version
