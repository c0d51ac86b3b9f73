"""Saving an edit from the editor or the API: check it, apply it, save it; and when someone else saved
first, show what they changed (the conflict) and merge over it, overwrite it, or revert."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from annotate.models import Project, Revision, Trajectory
from annotate.trajectory import Trajectory as CanonicalTrajectory
from annotate.workbench.documents import StaleVersion, current_document, document_at, lock_version, replace_document
from annotate.workbench.editing import Edit, EditError, apply_edit
from annotate.workbench.revisions import Change, diff_documents, rebase_edit


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
    if doc.to_dict() == trajectory.to_canonical().to_dict():
        raise EditError(f"version {version} has the same document as the current version; there is nothing to revert",
                        "version")
    replace_document(trajectory, doc, user=user, base_version=base_version, summary=f"reverted to version {version}")
    return doc
