"""Saving canonical trajectories to the database, with revisions (the import is ``annotate.ingest``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.db import connections, transaction
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, F, Value, When
from django.utils import timezone

from annotate import permissions, workflow
from annotate.permissions import author_of
from annotate.editing import Edit, EditError, apply_edit
from annotate.findings import validate
from annotate.ingest.rows import title_of as _title
from annotate.ingest.writer import index_search_text
from annotate.models import Project, Revision, Step, StepLabel, Trajectory, Turn
from annotate.revisions import Change, diff_documents, rebase_edit
from annotate.search import search_text
from annotate.trajectory import CASE_TYPE_NAMES, case_type_columns
from annotate.trajectory import Trajectory as CanonicalTrajectory

def replace_document(trajectory: Trajectory, doc: CanonicalTrajectory, *, user, base_version: int,
                     summary: str = "") -> Trajectory:
    """Save a whole canonical document over ``trajectory`` if ``base_version`` is current.

    Raises ``StaleVersion`` when someone else saved in between (optimistic locking). Writes the
    document's rows, its search text and a Revision; ``trajectory`` is updated in place.
    """
    now = timezone.now()
    findings = len(validate(doc))
    case_types, case_types_index = case_type_columns(doc.meta.case_types)
    fields = {
        "system": doc.system, "tools": doc.tools, "split": doc.meta.split, "tags": list(doc.meta.tags),
        "case_types": case_types, "case_types_index": case_types_index,
        "step_count": doc.step_count(), "finding_count": findings,
    }
    author = author_of(user)
    # Inside save_edit's transaction no savepoint is needed: a failure undoes the whole save.
    with transaction.atomic(savepoint=False):
        keep_original(trajectory.pk, base_version)
        # The conditional UPDATE is the lock: it matches only while nobody saved since base_version.
        updated = Trajectory.objects.filter(pk=trajectory.pk, version=base_version).update(
            version=base_version + 1, updated_at=now,
            title=Case(When(title="", then=Value(_title(doc))), default=F("title")), **fields)
        if updated == 1:  # (raising inside a savepoint-less block would spoil an enclosing transaction)
            _write_rows(trajectory.pk, doc)
            if trajectory.version == base_version:
                status = trajectory.status  # read with that version; any status change moves the version
            else:
                status = Trajectory.objects.filter(pk=trajectory.pk).values_list("status", flat=True).get()
            Revision.objects.create(trajectory_id=trajectory.pk, version=base_version + 1, author=author,
                                    created_at=now, summary=summary[:300], status=status, document=doc.to_dict())
            index_search_text([(trajectory.pk, search_text(doc))], replace=True)
    if updated != 1:
        raise StaleVersion(trajectory.pk, base_version)
    for k, v in fields.items():
        setattr(trajectory, k, v)
    trajectory.version, trajectory.updated_at, trajectory.status = base_version + 1, now, status
    trajectory.title = trajectory.title or _title(doc)
    return trajectory


def _write_rows(pk: int, doc: CanonicalTrajectory) -> None:
    """Replace the trajectory's turn, step and label rows with ``doc``'s."""
    # Plain DELETEs in dependency order: the ORM's cascade collector would first SELECT every
    # step to find its labels, which costs more than the whole rest of a step save.
    with connections[Trajectory.objects.db].cursor() as c:
        for model in (StepLabel, Step, Turn):
            c.execute(f"DELETE FROM {model._meta.db_table} WHERE trajectory_id = %s", [pk])
    Turn.objects.bulk_create([Turn(trajectory_id=pk, index=i, user=t.user, extra=t.extra)
                              for i, t in enumerate(doc.turns)])
    steps, labels = [], []
    for ti, si, s in doc.steps():
        steps.append(Step(trajectory_id=pk, turn_index=ti, position=si, kind=s.kind, text=s.text, name=s.name,
                          arguments=s.arguments if s.kind == "tool_call" else None, call_id=s.call_id,
                          ok=s.ok, note=s.note, train=s.train, extra=s.extra))
        labels.append(s.labels)
    Step.objects.bulk_create(steps)
    StepLabel.objects.bulk_create([StepLabel(step_id=st.pk, trajectory_id=pk, label=lab)
                                   for st, labs in zip(steps, labels) for lab in dict.fromkeys(labs)])


# --- the workbench: edits, conflicts, workflow, history, assignment ---------------------------------

def current_document(trajectory: Trajectory, version: int | None = None) -> CanonicalTrajectory:
    """The trajectory's document at its current version.

    Every save writes its document's rows and a Revision holding the same document in one
    transaction, so the revision at the current version is the document: one indexed read
    instead of three queries and a model instance per step. Rows are the fallback for a
    trajectory whose current version has no revision.
    """
    version = trajectory.version if version is None else version
    doc = (Revision.objects.filter(trajectory_id=trajectory.pk, version=version)
           .values_list("document", flat=True).first())
    if doc is not None:
        return CanonicalTrajectory.from_dict(doc)
    return trajectory.to_canonical()


def document_at(trajectory: Trajectory, version: int) -> CanonicalTrajectory | None:
    """The document as it was at ``version`` (from its Revision, or the rows for an unchanged
    import's version 1), or None if there is none."""
    doc = (Revision.objects.filter(trajectory_id=trajectory.pk, version=version)
           .values_list("document", flat=True).first())
    if doc is not None:
        return CanonicalTrajectory.from_dict(doc)
    if version == trajectory.version and not trajectory.revisions.exists():
        return trajectory.to_canonical()
    return None


def keep_original(trajectory_id: int, version: int, doc: CanonicalTrajectory | None = None) -> None:
    """Before ``version`` of a trajectory is changed, make sure it has its Revision.

    Imports write no revision (a third of an import's cost): until it first changes, a
    trajectory's rows are its version 1. The first change writes that version from the rows
    (or ``doc``, the same document) before they are replaced, dated when the trajectory was
    imported, so history, diffs, revert and correction suggestions keep the original. Call
    inside the change's transaction.
    """
    if Revision.objects.filter(trajectory_id=trajectory_id, version=version).exists():
        return
    # Lock the row, then look again: on PostgreSQL two first saves would otherwise both find no
    # revision and both write version 1, and the second would fail on the unique (trajectory,
    # version). Behind the lock the second sees the first's commit: the version has moved (its
    # conditional UPDATE will match nothing, a conflict) and the revision exists. (SQLite's
    # transactions hold the database's write lock, which serialises them already.)
    if lock_version(trajectory_id) != version or \
            Revision.objects.filter(trajectory_id=trajectory_id, version=version).exists():
        return
    row = Trajectory.objects.get(pk=trajectory_id)
    implied_revision(row.pk, version, row.status, row.created_at, row.updated_at, doc or row.to_canonical(),
                     otherwise="saved outside the workbench").save()


def lock_version(trajectory_id: int) -> int:
    """The trajectory's current version, its row locked until the transaction ends (``SELECT …
    FOR UPDATE`` on PostgreSQL; SQLite's transactions already hold the whole database's write lock)."""
    return Trajectory.objects.select_for_update().filter(pk=trajectory_id).values_list("version", flat=True).get()


def implied_revision(trajectory_id: int, version: int, status: str, created_at, updated_at,
                     doc: CanonicalTrajectory, *, otherwise: str) -> Revision:
    """The (unsaved) Revision a trajectory's rows stand for at ``version``: "imported", dated at
    the import, for version 1; ``otherwise`` (why it is written now) for a later version."""
    return Revision(trajectory_id=trajectory_id, version=version, author=None, status=status,
                    created_at=created_at if version == 1 else updated_at,
                    summary="imported" if version == 1 else otherwise, document=doc.to_dict())


def history_of(trajectory: Trajectory):
    """The trajectory's revisions, newest first (a queryset), or, for an import that has not
    changed yet, its implied version 1 (a list of one unsaved Revision, see keep_original)."""
    qs = trajectory.revisions.select_related("author").order_by("-version")
    if trajectory.version != 1 or qs.exists():
        return qs
    return [implied_revision(trajectory.pk, 1, trajectory.status, trajectory.created_at, trajectory.updated_at,
                             trajectory.to_canonical(), otherwise="")]


def check_labels(edit: Edit, doc: CanonicalTrajectory, project: Project) -> None:
    """New labels must come from the project's taxonomy (labels a step already had may stay)."""
    if edit.op not in ("update_step", "insert_step") or "labels" not in edit.fields:
        return
    labels = edit.fields["labels"]
    if not isinstance(labels, list):
        return  # apply_edit reports the type
    had: set[str] = set()
    if edit.op == "update_step" and edit.turn is not None and edit.step is not None:
        try:
            had = set(doc.turns[edit.turn].steps[edit.step].labels)
        except IndexError:
            return  # apply_edit reports the address
    allowed = set(project.label_names()) | had
    unknown = [x for x in labels if x not in allowed]
    if unknown:
        raise EditError(f"not in the project's taxonomy: {', '.join(map(str, unknown))}", "labels")


def save_edit(trajectory: Trajectory, edit: Edit, *, user, base_version: int,
              loaded: tuple[int, CanonicalTrajectory] | None = None) -> CanonicalTrajectory:
    """Apply ``edit`` to the current document and save it, if ``base_version`` is current.

    ``loaded``: ``(version, document)`` the caller already read; used when that version is still
    the current one (any save since would have moved the version). Raises StaleVersion (someone
    saved since) or EditError (the edit does not apply). Returns the saved document;
    ``trajectory`` is updated in place (its new version).
    """
    with transaction.atomic():
        if loaded is not None:
            # The document of the version the caller read; if that is the base, replace_document's
            # conditional UPDATE proves nobody saved since (every save moves the version).
            version, doc = loaded
            if version != base_version:
                raise StaleVersion(trajectory.pk, base_version)
        else:
            # On SQLite the transaction holds the write lock from its start (IMMEDIATE): the
            # version read here cannot change before replace_document's conditional update.
            version = lock_version(trajectory.pk)
            if version != base_version:
                raise StaleVersion(trajectory.pk, base_version)
            doc = current_document(trajectory, version)
        check_labels(edit, doc, trajectory.project)
        new = apply_edit(doc, edit)
        replace_document(trajectory, new, user=user, base_version=base_version, summary=edit.describe())
    return new


@dataclass
class Conflict:
    """What the other person changed between the version an edit was based on and now."""

    base_version: int
    current_version: int
    base: CanonicalTrajectory | None
    current: CanonicalTrajectory
    changes: list[Change]
    revisions: list[Revision]  # the saves in between, oldest first

    @property
    def authors(self) -> list[str]:
        names = [r.author.get_username() if r.author else "an import or script" for r in self.revisions]
        return list(dict.fromkeys(names))


def conflict_for(trajectory: Trajectory, base_version: int) -> Conflict:
    trajectory.refresh_from_db(fields=["version", "status", "assignee", "reviewer_comment", "updated_at"])
    current = current_document(trajectory)
    base = document_at(trajectory, base_version)
    revisions = list(trajectory.revisions.filter(version__gt=base_version).select_related("author")
                     .order_by("version").defer("document"))
    changes = diff_documents(base, current) if base is not None else []
    return Conflict(base_version, trajectory.version, base, current, changes, revisions)


def resolve_conflict(trajectory: Trajectory, edit: Edit, *, user, base_version: int, seen_version: int,
                     resolution: str) -> CanonicalTrajectory:
    """Save an edit that was based on ``base_version`` after the user saw version ``seen_version``.

    - ``merge``: the edit re-applied on top of the latest version (field by field, so their other
      changes stay);
    - ``overwrite``: the base version with the edit applied replaces theirs (their change stays in
      the history and can be restored).

    Raises StaleVersion when yet another save happened after ``seen_version``, EditError when
    the edit no longer applies (they deleted the step).
    """
    base = document_at(trajectory, base_version)
    if base is None:
        raise EditError(f"version {base_version} has no revision to merge from", "base_version")
    with transaction.atomic():
        version = lock_version(trajectory.pk)
        if version != seen_version:
            raise StaleVersion(trajectory.pk, seen_version)
        current = current_document(trajectory, version)
        if resolution == "merge":
            rebased = rebase_edit(edit, base, current)
            if rebased.edit is None:
                raise EditError("the other change removed what this edit changes; use overwrite to bring it back",
                                "resolution")
            check_labels(rebased.edit, current, trajectory.project)
            new = apply_edit(current, rebased.edit)
            summary = f"{edit.describe()} (merged over version {seen_version})"
        elif resolution == "overwrite":
            check_labels(edit, base, trajectory.project)
            new = apply_edit(base, edit)
            summary = f"{edit.describe()} (overwrote versions {base_version + 1}–{seen_version})"
        else:
            raise EditError("must be merge or overwrite", "resolution")
        replace_document(trajectory, new, user=user, base_version=seen_version, summary=summary)
    return new


def revert(trajectory: Trajectory, version: int, *, user, base_version: int) -> CanonicalTrajectory:
    """Make the document at ``version`` the current one (a new revision; nothing is deleted)."""
    doc = document_at(trajectory, version)
    if doc is None:
        raise EditError(f"there is no version {version}", "version")
    replace_document(trajectory, doc, user=user, base_version=base_version, summary=f"reverted to version {version}")
    return doc


class WorkflowRefused(Exception):
    """A workflow move that is not allowed now; ``blockers`` are findings to fix first."""

    def __init__(self, message: str, blockers=()):
        super().__init__(message)
        self.message = message
        self.blockers = list(blockers)


def transition(trajectory: Trajectory, action: str, *, user, comment: str = "",
               base_version: int | None = None) -> Trajectory:
    """Move ``trajectory`` through the review workflow (checks the role; the caller checked membership).

    Each move is a new version with a Revision (same document), so the history shows who did it.
    """
    role = permissions.role_in(user, trajectory.project)
    may_edit = permissions.can_edit_trajectory(user, trajectory)
    if action not in workflow.allowed_actions(role, trajectory.status, may_edit):
        if action in workflow.ACTIONS and trajectory.status not in workflow.ACTIONS[action].sources:
            raise WorkflowRefused(f"This trajectory is {trajectory.status}; it cannot be {_past(action)} now.")
        raise PermissionDenied(f"You may not {action} this trajectory.")
    act = workflow.ACTIONS[action]
    comment = comment.strip()
    if act.needs_comment and not comment:
        raise WorkflowRefused("Say what needs fixing: a rejection needs a comment for the annotator.")
    now = timezone.now()
    with transaction.atomic():
        current = Trajectory.objects.select_for_update().filter(pk=trajectory.pk).values("version", "status").get()
        if base_version is not None and current["version"] != base_version:
            raise StaleVersion(trajectory.pk, base_version)
        if current["status"] not in act.sources:
            raise WorkflowRefused(f"Someone else moved this trajectory to {current['status']} meanwhile.")
        doc = current_document(trajectory, current["version"])
        if action == "submit":
            blockers = workflow.submission_blockers(doc, validate(doc))
            if blockers:
                raise WorkflowRefused("Fix these errors, or label the steps that carry them, before submitting.",
                                      blockers)
        version = current["version"]
        keep_original(trajectory.pk, version, doc)
        changes = {"status": act.target, "version": version + 1, "updated_at": now}
        if action in ("approve", "reject"):
            changes["reviewer_comment"] = comment
        elif action == "submit" and trajectory.assignee_id is None:
            changes["assignee"] = user  # whoever hands it in owns it (progress counts it)
        Trajectory.objects.filter(pk=trajectory.pk, version=version).update(**changes)
        summary = {"submit": "submitted for review", "approve": "approved", "reject": "rejected",
                   "reopen": "reopened as draft"}[action] + (f": {comment}" if comment else "")
        Revision.objects.create(trajectory_id=trajectory.pk, version=version + 1, author=author_of(user),
                                created_at=now, summary=summary[:300], status=act.target, document=doc.to_dict())
    trajectory.refresh_from_db()
    return trajectory


def _past(action: str) -> str:
    return {"submit": "submitted", "approve": "approved", "reject": "rejected", "reopen": "reopened"}[action]


def assign(project: Project, ids: list[int], assignee) -> int:
    """Assign (or, with ``assignee`` None, unassign) the project's trajectories ``ids``."""
    return Trajectory.objects.filter(project=project, pk__in=ids).update(assignee=assignee)


OPEN_STATUSES = (Trajectory.DRAFT, Trajectory.REJECTED)


def next_in_queue(user, project: Project, *, after: int | None = None) -> Trajectory | None:
    """The next trajectory for ``user`` to work on, after ``after`` (wrapping around).

    Leads review first (submitted trajectories), then their own open work. Annotators get their
    assigned open work (rejected first: a reviewer is waiting), then claim an unassigned draft:
    the claim is a conditional update, so two annotators never get the same one.
    """
    role = permissions.role_in(user, project)
    mine = project.trajectories.filter(assignee=user, status__in=OPEN_STATUSES)
    queues = [mine.filter(status=Trajectory.REJECTED), mine.filter(status=Trajectory.DRAFT)]
    if role in (permissions.LEAD, permissions.ADMIN):
        queues.insert(0, project.trajectories.filter(status=Trajectory.SUBMITTED))
    for qs in queues:
        found = _first_after(qs, after)
        if found is not None:
            return found
    for _ in range(5):  # a claim can lose a race; try the next one
        candidate = _first_after(project.trajectories.filter(assignee__isnull=True, status=Trajectory.DRAFT), after)
        if candidate is None:
            return None
        if Trajectory.objects.filter(pk=candidate.pk, assignee__isnull=True).update(assignee=user) == 1:
            candidate.assignee = user
            return candidate
    return None


def next_to_review(project: Project, *, after: int | None = None) -> Trajectory | None:
    """The next submitted trajectory after ``after`` (wrapping around), for a reviewer."""
    return _first_after(project.trajectories.filter(status=Trajectory.SUBMITTED), after)


def _first_after(qs, after: int | None) -> Trajectory | None:
    qs = qs.order_by("id")
    if after is not None:
        found = qs.filter(pk__gt=after).first()
        if found is not None:
            return found
        return qs.exclude(pk=after).first()
    return qs.first()


class StaleVersion(Exception):
    def __init__(self, pk: int, base_version: int):
        super().__init__(f"trajectory {pk} changed since version {base_version}")
        self.pk = pk
        self.base_version = base_version
# --- dashboard and queue (shared by the pages and the API) ------------------------------------------

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
    by_status = dict(trajectories.values_list("status").annotate(n=Count("id")))
    total = sum(by_status.values())
    counts: Counter = Counter()
    for index, n in trajectories.values_list("case_types_index").annotate(n=Count("id")):
        for ct in filter(None, index.strip("|").split("|")):
            counts[ct] += n
    required = list(project.required_case_types or [])
    coverage = coverage_rows(counts, total, required)
    labels = (StepLabel.objects.filter(trajectory__project=project).values("label")
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


QUEUE_SORTS = ("id", "-id", "updated_at", "-updated_at", "finding_count", "-finding_count", "step_count",
               "-step_count", "title", "-title")


def queue(project: Project, filters: dict, user):
    """The project's trajectories narrowed by the queue's filters, in the chosen order.

    ``filters``: status, case_type, label, assignee ("me", "none" or a user id), source, split,
    q (words in any step), sort (one of QUEUE_SORTS). Empty values do not filter.
    """
    qs = Trajectory.objects.filter(project=project)
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("case_type"):
        qs = qs.with_case_type(filters["case_type"])
    if filters.get("label"):
        qs = qs.with_label(filters["label"])
    assignee = filters.get("assignee")
    if assignee == "me":
        qs = qs.filter(assignee=user)
    elif assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif assignee:
        qs = qs.filter(assignee_id=int(assignee))
    if filters.get("source"):
        qs = qs.filter(source=filters["source"])
    if filters.get("split"):
        qs = qs.filter(split=filters["split"])
    if filters.get("q"):
        qs = qs.search(filters["q"])
    sort = filters.get("sort") or "id"
    if sort not in QUEUE_SORTS:
        sort = "id"
    order = [sort] if sort.lstrip("-") == "id" else [sort, "id"]
    # The queue shows a few columns; leave the big ones (system prompt, tool specs) unread.
    return (qs.select_related("assignee").order_by(*order)
            .only("id", "project_id", "title", "status", "case_types", "split", "source", "step_count",
                  "finding_count", "updated_at", "version", "assignee__id", "assignee__username"))
