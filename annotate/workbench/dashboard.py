"""A project's dashboard: counts by status, case-type coverage, error labels and per-annotator
progress (shared by the page and the API)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db.models import Count

from annotate.agreement import services as overlap
from annotate.models import Project, StepLabel, Trajectory
from annotate.trajectory import CASE_TYPE_NAMES


# A required case type under this share of the project's trajectories is "thin".
THIN_SHARE = 0.05
# Case types that teach the model when NOT to call a tool; without them it learns to call too often.
RESTRAINT_CASE_TYPES = ("no_tool", "clarification", "tool_unavailable", "irrelevant_tools")


@dataclass
class CoverageRow:
    case_type: str
    name: str
    count: int
    share: float
    required: bool
    state: str  # ok | thin | missing
    bar: int  # percent of the widest bar


def coverage_rows(counts: Counter, total: int, required: list[str]) -> list[CoverageRow]:
    """One row per case type (the known ones, then any other a trajectory carries)."""
    names = dict(CASE_TYPE_NAMES)
    for ct in counts:
        names.setdefault(ct, ct)
    widest = max(counts.values(), default=0) or 1
    rows = []
    for ct, name in names.items():
        n = counts.get(ct, 0)
        share = n / total if total else 0.0
        state = "missing" if n == 0 else ("thin" if share < THIN_SHARE else "ok")
        rows.append(CoverageRow(ct, name, n, share, ct in required, state, round(100 * n / widest)))
    return rows


@dataclass
class Dashboard:
    total: int
    by_status: list[tuple[str, str, int]]  # (status, label, count)
    coverage: list[CoverageRow]
    warnings: list[CoverageRow]  # required case types that are missing or thin
    labels: list[dict]  # {"label", "steps", "trajectories"}
    progress: list[dict]  # per member (then "unassigned")

    @property
    def restraint_warning(self) -> bool:
        """Whether what is missing is what teaches a model not to call tools."""
        return any(w.case_type in RESTRAINT_CASE_TYPES for w in self.warnings)


def dashboard(project: Project) -> Dashboard:
    """Counts by status, case-type coverage, error labels and per-annotator progress.

    Every count is one GROUP BY over an index (no scan of the wide trajectory rows).
    """
    trajectories = Trajectory.objects.filter(project=project).order_by()
    # The project's items are counted once: an overlapped item's blind version copies are each
    # annotator's work (counted under progress), not more items, nor more labels.
    items = overlap.canonical(trajectories)
    by_status = dict(items.values_list("status").annotate(n=Count("id")))
    total = sum(by_status.values())
    counts: Counter = Counter()
    for index, n in items.values_list("case_types_index").annotate(n=Count("id")):
        for ct in filter(None, index.strip("|").split("|")):
            counts[ct] += n
    required = list(project.required_case_types or [])
    coverage = coverage_rows(counts, total, required)
    labels = (StepLabel.objects.filter(trajectory__in=items).values("label")
              .annotate(steps=Count("id"), trajectories=Count("trajectory", distinct=True)).order_by("-steps", "label"))
    return Dashboard(
        total=total,
        by_status=[(s, label, by_status.get(s, 0)) for s, label in Trajectory.STATUS_CHOICES],
        coverage=coverage,
        warnings=[row for row in coverage if row.required and row.state != "ok"] if total else [],
        labels=list(labels), progress=annotator_progress(project, trajectories))


def annotator_progress(project: Project, trajectories) -> list[dict]:
    """Per member: assigned trajectories by status, and the share handed in (submitted or approved)."""
    counts: dict = {}
    for assignee, status, n in trajectories.values_list("assignee", "status").annotate(n=Count("id")):
        counts.setdefault(assignee, Counter())[status] = n

    def row(user, role, c):
        assigned = sum(c.values())
        done = c[Trajectory.SUBMITTED] + c[Trajectory.APPROVED]
        return {"user": user, "role": role, "assigned": assigned, "draft": c[Trajectory.DRAFT],
                "submitted": c[Trajectory.SUBMITTED], "approved": c[Trajectory.APPROVED],
                "rejected": c[Trajectory.REJECTED], "percent": round(100 * done / assigned) if assigned else 0}

    rows = [row(m.user, m.get_role_display(), counts.get(m.user_id, Counter()))
            for m in project.memberships.select_related("user").order_by("user__username")]
    if counts.get(None):
        rows.append(row(None, "", counts[None]))
    return rows


# The "Getting started" panel on a new project -----------------------------------------------------------

# The first hour's steps in order: (key, title, what to do). Each is done once its first result exists.
GETTING_STARTED = (
    ("import", "Import trajectories", "Upload a JSONL file of conversations (OpenAI messages, ShareGPT, BFCL …)."),
    ("annotate", "Annotate", "Open the queue, fix a trajectory's steps, label errors and submit it."),
    ("snapshot", "Snapshot a dataset", "Freeze a selection with render settings; the audit says if it can train."),
    ("train", "Train", "Launch an SFT run on the snapshot."),
    ("evaluate", "Evaluate", "Measure the trained model on held-out items."),
)


def getting_started(project: Project) -> list[dict]:
    """The steps with whether each is done (a few EXISTS queries; reverse relations, so no upward import)."""
    done = {
        "import": project.trajectories.exists(),
        "annotate": project.trajectories.exclude(status=Trajectory.DRAFT, version=1).exists(),
        "snapshot": project.snapshots.filter(status="succeeded").exists(),
        "train": project.training_jobs.filter(status="succeeded").exists(),
        "evaluate": project.eval_runs.filter(status="succeeded").exists(),
    }
    return [{"key": k, "title": t, "hint": h, "done": done[k]} for k, t, h in GETTING_STARTED]
