"""Models the snapshot export adds beside ``training.models``: pinned pairs and the render cache.

Imported at the end of ``training/models.py`` with one line, so Django sees them as models of the
``training`` app (the app label, tables and migrations are those of ``training``).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from studio.fields import OrderedJSONField

__all__ = ["SnapshotPair", "RenderCacheEntry"]


class SnapshotPair(models.Model):
    """A preference pair pinned into a DPO snapshot: its full content, frozen at selection time.

    Pairs are edited after a snapshot is taken, so the snapshot keeps the document itself
    (``{"context": canonical trajectory, "chosen": [steps], "rejected": [steps], "meta": {...}}``)
    rather than a pointer; ``source_id`` names the pair it came from, where there was one.
    """

    snapshot = models.ForeignKey("training.Snapshot", on_delete=models.CASCADE, related_name="pairs")
    position = models.PositiveIntegerField()
    source_id = models.PositiveBigIntegerField(null=True, blank=True)
    key = models.CharField(max_length=64, help_text="sha256 of the pinned document")
    document = OrderedJSONField()

    class Meta:
        ordering = ["position"]
        # Serves "the pinned pairs of snapshot S" in export order.
        constraints = [models.UniqueConstraint(fields=["snapshot", "position"], name="unique_snapshot_pair")]


class RenderCacheEntry(models.Model):
    """What one pinned item rendered to under one set of render settings.

    ``key`` names the item's content: ``r<revision id>`` for a trajectory revision (revisions are
    immutable), ``p<sha256>`` for a pinned pair document. ``settings_hash`` covers the render
    settings, the template text, the tokenizer files and the render code itself, so a change to
    any of them misses the cache instead of serving stale samples.
    """

    key = models.CharField(max_length=80)
    settings_hash = models.CharField(max_length=64)
    result = models.JSONField(help_text="what the audit needs of the item (training.export.render_item)")
    jsonl = models.TextField(blank=True, default="", help_text="the item's JSONL lines, as the files hold them")
    arrow = models.BinaryField(blank=True, default=b"", help_text="the item's rows as a serialised Arrow record batch")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Serves the export's bulk lookup "entries for these keys under settings S".
            models.UniqueConstraint(fields=["settings_hash", "key"], name="unique_render_cache_entry"),
        ]
