"""Snapshots: a selection pinned to trajectory revisions (or pair documents), plus render settings,
exported by a worker into immutable, content-hashed dataset files.

    selection.py    what a snapshot takes: filters, pinned revisions, pinned pairs (and the pairs
                    app's registered selector)
    lifecycle.py    plan, create (or reuse) and enqueue, retry, override the audit, cancel
    export_job.py   the worker side: claim, render through ``training.export`` with the database
                    render cache, progress and heartbeats, files swapped into place
    tasks.py        the Celery task (its name, ``training.tasks.export_snapshot``, is kept)
    models.py       pinned pairs and the render cache (models of the ``training`` app)
    views.py, api.py, api_urls.py   the pages and the REST API

The names other apps and the CLI use are importable from here.
"""

from training.snapshots.export_job import claim, run_snapshot_export
from training.snapshots.lifecycle import (create_snapshot, override_audit, plan_snapshot, request_cancel,
                                          retry_export, revive_lost)
from training.snapshots.selection import (STATUS_FILTERS, PinnedPair, Selection, SnapshotError, pin_revisions,
                                          register_pair_selector)

__all__ = ["STATUS_FILTERS", "PinnedPair", "Selection", "SnapshotError", "claim", "create_snapshot",
           "override_audit", "pin_revisions", "plan_snapshot", "register_pair_selector", "request_cancel",
           "retry_export", "revive_lost", "run_snapshot_export"]
