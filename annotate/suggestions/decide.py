"""Accepting or dismissing a judge's suggestion. Accepting adds the label to the step (and the
judge's note, where the step has none) as a normal save: a revision authored by the person who
accepted, whose summary names the judge run. Callers check the role first."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from annotate.suggestions.models import StepSuggestion
from annotate.workbench.documents import current_document, lock_version, replace_document
from annotate.workbench.editing import Edit, EditError, apply_edit


class SuggestionError(EditError):
    """A suggestion that cannot be accepted or dismissed (field: ``suggestion``)."""


def _pending(suggestion_id: int, trajectory_id: int) -> StepSuggestion:
    row = StepSuggestion.objects.select_related("trajectory__project").filter(
        pk=suggestion_id, trajectory_id=trajectory_id).first()
    if row is None:
        raise SuggestionError("no such suggestion on this trajectory", "suggestion")
    if row.status != StepSuggestion.PENDING:
        raise SuggestionError(f"this suggestion was already {row.status}", "suggestion")
    return row


def accept(suggestion_id: int, trajectory_id: int, *, user) -> StepSuggestion:
    """Label the step as suggested (a revision by ``user``) and mark the suggestion accepted."""
    with transaction.atomic():
        version = lock_version(trajectory_id)
        row = _pending(suggestion_id, trajectory_id)
        trajectory = row.trajectory
        doc = current_document(trajectory, version)
        try:
            step = doc.turns[row.turn_index].steps[row.step_index]
        except IndexError:
            step = None
        if step is None or step.kind != row.step_kind:
            raise SuggestionError(f"turn {row.turn_index + 1}, step {row.step_index + 1} is no longer the "
                                  f"{row.step_kind} step the judge read (version {row.version}); dismiss it",
                                  "suggestion")
        if row.label not in trajectory.project.label_names() and row.label not in step.labels:
            raise SuggestionError(f"{row.label!r} is no longer in the project's taxonomy", "suggestion")
        fields = {"labels": sorted(set(step.labels) | {row.label})}
        if row.note and not step.note:
            fields["note"] = row.note
        edit = Edit("update_step", row.turn_index, row.step_index, fields)
        new = apply_edit(doc, edit)
        summary = (f"accepted {row.label} on turn {row.turn_index + 1}, step {row.step_index + 1} "
                   f"from judge run #{row.judge_run_id} ({row.source})")[:300]
        replace_document(trajectory, new, user=user, base_version=version, summary=summary)
        row.status, row.decided_by, row.decided_at = StepSuggestion.ACCEPTED, user, timezone.now()
        row.save(update_fields=["status", "decided_by", "decided_at"])
    return row


def dismiss(suggestion_id: int, trajectory_id: int, *, user) -> StepSuggestion:
    """Mark the suggestion dismissed; the document does not change."""
    with transaction.atomic():
        row = _pending(suggestion_id, trajectory_id)
        row.status, row.decided_by, row.decided_at = StepSuggestion.DISMISSED, user, timezone.now()
        row.save(update_fields=["status", "decided_by", "decided_at"])
    return row


def pending_for(trajectory_id: int) -> list[StepSuggestion]:
    return list(StepSuggestion.objects.filter(trajectory_id=trajectory_id, status=StepSuggestion.PENDING))
