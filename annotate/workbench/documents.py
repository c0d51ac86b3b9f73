"""A trajectory's versions: the current document, the one at a version, the history, and saving a
whole document over the current one (optimistic locking; a Revision per save).

Imports write no Revision (``annotate.ingest``): until it first changes, an imported trajectory's
rows are its version 1, and :func:`keep_original` writes that revision before the first change.
"""

from __future__ import annotations

from django.db import connections, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from annotate.ingest.rows import DOCUMENT_COLUMNS, as_stored, rows_of
from annotate.ingest.writer import index_search_text, insert_rows_with_orm
from annotate.models import Revision, Step, StepLabel, Trajectory, Turn
from annotate.permissions import author_of
from annotate.search import search_text
from annotate.trajectory import Trajectory as CanonicalTrajectory

# The trajectory columns a saved document replaces (its source, ids, reference and extra stay
# as imported; the title only when it is empty).
REPLACED_COLUMNS = ("system", "tools", "split", "tags", "case_types", "case_types_index", "step_count",
                    "finding_count")


class StaleVersion(Exception):
    """A save based on a version that is no longer the current one (someone else saved since)."""

    def __init__(self, pk: int, base_version: int):
        super().__init__(f"trajectory {pk} changed since version {base_version}")
        self.pk = pk
        self.base_version = base_version


def replace_document(trajectory: Trajectory, doc: CanonicalTrajectory, *, user, base_version: int,
                     summary: str = "") -> Trajectory:
    """Save a whole canonical document over ``trajectory`` if ``base_version`` is current.

    Raises ``StaleVersion`` when someone else saved in between (optimistic locking). Writes the
    document's rows, its search text and a Revision; ``trajectory`` is updated in place.
    """
    now = timezone.now()
    turn_rows, step_rows, label_rows = [], [], []
    values = dict(zip(DOCUMENT_COLUMNS, rows_of(doc, 0, turn_rows, step_rows, label_rows, as_stored, {})))
    fields = {name: values[name] for name in REPLACED_COLUMNS}
    author = author_of(user)
    # Inside save_edit's transaction no savepoint is needed: a failure undoes the whole save.
    with transaction.atomic(savepoint=False):
        keep_original(trajectory.pk, base_version)
        # The conditional UPDATE is the lock: it matches only while nobody saved since base_version.
        updated = Trajectory.objects.filter(pk=trajectory.pk, version=base_version).update(
            version=base_version + 1, updated_at=now,
            title=Case(When(title="", then=Value(values["title"])), default=F("title")), **fields)
        if updated == 1:  # (raising inside a savepoint-less block would spoil an enclosing transaction)
            _delete_rows(trajectory.pk)
            insert_rows_with_orm([trajectory.pk], turn_rows, step_rows, label_rows)
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
    trajectory.title = trajectory.title or values["title"]
    return trajectory


def _delete_rows(pk: int) -> None:
    """Delete the trajectory's turn, step and label rows (before its new document's are written)."""
    # Plain DELETEs in dependency order: the ORM's cascade collector would first SELECT every
    # step to find its labels, which costs more than the whole rest of a step save.
    with connections[Trajectory.objects.db].cursor() as c:
        for model in (StepLabel, Step, Turn):
            c.execute(f"DELETE FROM {model._meta.db_table} WHERE trajectory_id = %s", [pk])


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
