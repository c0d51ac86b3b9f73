"""Review workflow: draft → submitted → approved / rejected, and who may move a trajectory (pure).

>>> allowed_actions("annotator", "draft", may_edit=True)
['submit']
>>> allowed_actions("lead", "submitted", may_edit=True)
['approve', 'reject', 'reopen']
>>> next_status("reject", "submitted")
'rejected'
"""

from __future__ import annotations

from dataclasses import dataclass

from annotate.findings import Finding
from core.errors import InputError
from annotate.trajectory import Trajectory

DRAFT, SUBMITTED, APPROVED, REJECTED = "draft", "submitted", "approved", "rejected"


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    sources: tuple[str, ...]
    target: str
    lead_only: bool
    needs_comment: bool = False


ACTIONS = {
    a.name: a for a in (
        Action("submit", "Submit for review", (DRAFT, REJECTED), SUBMITTED, lead_only=False),
        Action("approve", "Approve", (SUBMITTED,), APPROVED, lead_only=True),
        Action("reject", "Reject", (SUBMITTED,), REJECTED, lead_only=True, needs_comment=True),
        Action("reopen", "Reopen as draft", (SUBMITTED, APPROVED, REJECTED), DRAFT, lead_only=True),
    )
}

# The actions' names (the API's action choices; the schema names them WorkflowActionEnum).
ACTION_NAMES = tuple(ACTIONS)


class WorkflowError(InputError):
    """A workflow move that the state machine does not allow; ``field`` is the action."""

    default_field = "action"


def allowed_actions(role: str | None, status: str, may_edit: bool) -> list[str]:
    """The actions ``role`` may take on a trajectory in ``status``.

    ``may_edit``: whether the user may edit this trajectory (an annotator only their own or
    unassigned ones). Leads and admins may take every action.
    """
    if role is None:
        return []
    lead = role in ("lead", "admin")
    out = []
    for a in ACTIONS.values():
        if status not in a.sources:
            continue
        if a.lead_only and not lead:
            continue
        if not a.lead_only and not (lead or may_edit):
            continue
        out.append(a.name)
    return out


def next_status(action: str, status: str) -> str:
    a = ACTIONS.get(action)
    if a is None:
        raise WorkflowError(f"unknown action {action!r}")
    if status not in a.sources:
        raise WorkflowError(f"cannot {action} a trajectory that is {status}")
    return a.target


def submission_blockers(doc: Trajectory, findings: list[Finding]) -> list[Finding]:
    """Errors an annotator must fix or explain before submitting.

    An error-severity finding blocks unless its step carries an error label (the mistake is
    known and labelled) or is excluded from training (its train flag is off).
    """
    out = []
    for f in findings:
        if f.severity != "error":
            continue
        if f.turn is None or f.step is None:
            out.append(f)
            continue
        step = doc.turns[f.turn].steps[f.step]
        if step.labels or not step.train:
            continue
        out.append(f)
    return out


_MOVES = {SUBMITTED: "submitted for review", APPROVED: "approved", REJECTED: "rejected"}


def status_change(before: str, after: str, who: str) -> str:
    """A status change as the history says it.

    >>> status_change("draft", "submitted", "ann")
    'Submitted for review by ann'
    >>> status_change("submitted", "approved", "lena")
    'Approved by lena'
    >>> status_change("approved", "draft", "lena")
    'Reopened as draft by lena'
    """
    move = "reopened as draft" if after == DRAFT else _MOVES.get(after, f"moved to {after}")
    return f"{move[0].upper()}{move[1:]} by {who}"


def why_not_editable(status: str, role: str | None, assignee: str, username: str) -> str:
    """Why a member may not change (or revert) a trajectory now: said where the buttons would be.

    >>> why_not_editable("submitted", "annotator", "ann", "ann")
    'It is submitted and waiting for review, so it cannot be changed or reverted now. A lead can reject it or reopen it as a draft; then you can revert.'
    >>> why_not_editable("draft", "annotator", "bob", "ann")
    'It is assigned to bob: only they or a lead can change or revert it.'
    """
    if role is None:
        return "You are not a member of this project."
    if status in (SUBMITTED, APPROVED):
        state = "submitted and waiting for review" if status == SUBMITTED else "approved"
        return (f"It is {state}, so it cannot be changed or reverted now. A lead can "
                f"{'reject it or ' if status == SUBMITTED else ''}reopen it as a draft; then you can revert.")
    if assignee and assignee != username:
        return f"It is assigned to {assignee}: only they or a lead can change or revert it."
    return "You may not change this trajectory."
