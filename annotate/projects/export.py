"""A project's trajectories as JSON Lines, in a lossless export format (``raw`` or ``messages``).

The one code path of ``manage.py export_trajectories`` and the export page's download.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from annotate.formats import EXPORT_FORMATS, export_records
from annotate.models import Project, Trajectory
from core.errors import InputError

STATUSES = ("any", *(s for s, _ in Trajectory.STATUS_CHOICES))
CHUNK = 500


def export_query(project: Project, status: str = "any"):
    if status not in STATUSES:
        raise InputError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}", "status")
    qs = project.trajectories.order_by("id")
    return qs if status == "any" else qs.filter(status=status)


def export_lines(project: Project, fmt: str = "raw", status: str = "any") -> Iterator[str]:
    """One JSON line per trajectory, in id order, read 500 at a time (checks first, then yields)."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"cannot export to {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}", "format")
    qs = export_query(project, status)

    def lines():
        last = 0
        while True:
            # Keyset pages: stable while someone edits, and no OFFSET scan on a large project.
            batch = list(qs.filter(id__gt=last)[:CHUNK])
            if not batch:
                return
            last = batch[-1].id
            for rec in export_records([t.to_canonical() for t in batch], fmt):
                yield json.dumps(rec, ensure_ascii=False) + "\n"

    return lines()
