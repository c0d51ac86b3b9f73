"""Moving a trajectory through the review workflow (submit, approve, reject, reopen): the rules are
:mod:`annotate.workbench.workflow`; this writes the move as a new version with its Revision."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from annotate import permissions
from annotate.agreement.tasks import after_submission
from annotate.findings import validate
from annotate.models import Revision, Trajectory
from annotate.notifications.services import notify_rejected
from annotate.permissions import author_of
from annotate.workbench import workflow
from annotate.workbench.documents import StaleVersion, current_document, keep_original


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
    if action == "submit":
        after_submission(trajectory)  # an overlap version: agreement refreshed (annotate.agreement)
    if action == "reject":
        notify_rejected(trajectory, by=user, comment=comment)
    return trajectory


def _past(action: str) -> str:
    return {"submit": "submitted", "approve": "approved", "reject": "rejected", "reopen": "reopened"}[action]


@dataclass
class BulkOutcome:
    """What a bulk move did: the ids moved and, per id refused, why (``{"id", "message"}``)."""

    done: list[int] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)


def bulk_transition(project, ids: list[int], action: str, *, user, comment: str = "") -> BulkOutcome:
    """``action`` on each trajectory of ``ids`` in ``project``, one at a time as the editor's buttons
    do (each a version with its Revision, each checked against the user's role and its status).
    One refused does not stop the others; each refusal says why."""
    out = BulkOutcome()
    if action not in workflow.ACTIONS:
        raise workflow.WorkflowError(f"unknown action {action!r}; expected one of {', '.join(workflow.ACTIONS)}")
    if workflow.ACTIONS[action].needs_comment and not comment.strip():
        raise workflow.WorkflowError("a rejection needs a comment for the annotators", "comment")
    found = {t.pk: t for t in project.trajectories.filter(pk__in=ids).select_related("project")}
    for pk in dict.fromkeys(ids):
        t = found.get(pk)
        if t is None:
            out.refused.append({"id": pk, "message": "no such trajectory in this project"})
            continue
        try:
            transition(t, action, user=user, comment=comment)
        except (WorkflowRefused, PermissionDenied) as e:
            out.refused.append({"id": pk, "message": getattr(e, "message", None) or str(e)})
        else:
            out.done.append(pk)
    return out
