"""DPO snapshots of the pairs app's preference pairs: the wiring between ``annotate.pairs`` and snapshots.

The data flows annotate -> training, so training holds this wiring, never annotate: at start-up
(``TrainingConfig.ready``) it registers

- a pair selector with ``training.snapshots`` (a DPO snapshot made on the snapshot pages pins the
  project's pairs), and
- the DPO export with ``annotate.pairs.services`` (the pairs pages, API and CLI queue one).
"""

from __future__ import annotations

from annotate.pairs.services import DpoExport, ExportError, pair_documents, register_dpo_export
from training.snapshots import (
    PinnedPair,
    SnapshotError,
    claim,
    create_snapshot,
    register_pair_selector,
    run_snapshot_export,
)


def _pinned(documents) -> list[PinnedPair]:
    return [PinnedPair(document=doc, source_id=pk) for doc, pk in documents]


def select_pairs(project, filters: dict | None = None) -> list[PinnedPair]:
    """The selector DPO snapshots call (``training.snapshots.register_pair_selector``)."""
    return _pinned(pair_documents(project, filters))


def create_dpo_snapshot(project, documents, *, user, render_settings: dict | None, splits: list, name: str,
                        out_dir, enqueue: bool):
    """A DPO snapshot pinning ``documents`` (``(document, pair id)``); a refused one is an ``ExportError``."""
    try:
        return create_snapshot(project, "dpo", {"status": "approved", "splits": splits}, render_settings, user,
                               name=name, pairs=_pinned(documents), out_dir=out_dir, enqueue=enqueue)
    except SnapshotError as e:
        raise ExportError(str(e)) from None


def export_now(snapshot):
    """Run a snapshot's export in this process (when no one else claimed it); the row, refreshed."""
    if claim(snapshot.pk):
        snapshot = run_snapshot_export(snapshot)
    snapshot.refresh_from_db()
    return snapshot


def register() -> None:
    register_pair_selector(select_pairs)
    register_dpo_export(DpoExport(create=create_dpo_snapshot, run_now=export_now))
