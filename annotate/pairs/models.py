"""Preference pairs in the database: pairs, the project's own categories, suggestions from corrections.

Imported by name at the end of ``annotate/models.py``, so Django sees these as models of the
``annotate`` app (their tables and migrations stay the app's). The logic lives in the pure
``annotate.pairs`` modules; these rows hold its documents: a pair's ``context`` is a canonical
trajectory (its last turn cut at the fork), ``chosen`` and ``rejected`` are lists of canonical steps.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from annotate.pairs import core
from annotate.permissions import projects_for
from studio.fields import OrderedJSONField


class PairCategory(models.Model):
    """A category a project adds to the built-in ones (``annotate.pairs.core.CATEGORIES``)."""

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="pair_categories")
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        verbose_name_plural = "pair categories"
        ordering = ["name"]
        # Serves "the project's categories" (every pair form) and keeps keys unique per project.
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="unique_pair_category")]

    def __str__(self) -> str:
        return self.name


def categories_for(project) -> dict[str, core.Category]:
    """Built-in categories followed by the project's own, keyed by ``key``."""
    out = dict(core.CATEGORIES)
    for c in project.pair_categories.all():
        if c.key not in out:
            out[c.key] = core.Category(c.key, c.name, c.description, "")
    return out


class PairQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(project__in=projects_for(user))

    def approved(self):
        return self.filter(status=Pair.APPROVED)


class Pair(models.Model):
    DRAFT, APPROVED, REJECTED = "draft", "approved", "rejected"
    STATUS_CHOICES = [(DRAFT, "Draft"), (APPROVED, "Approved"), (REJECTED, "Rejected")]
    SOURCE_CHOICES = [("manual", "Manual"), ("correction", "Correction"), ("imported", "Imported"),
                      ("evaluation", "Evaluation"), ("rollout", "GRPO rollout")]

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="pairs")
    # Where the pair was forked from, if anywhere (imported pairs have no trajectory).
    trajectory = models.ForeignKey("annotate.Trajectory", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="pairs")
    revision = models.ForeignKey("annotate.Revision", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    cut_turn = models.PositiveIntegerField(default=0)
    cut_step = models.PositiveIntegerField(default=0)
    context = OrderedJSONField()
    chosen = OrderedJSONField(default=list)
    rejected = OrderedJSONField(default=list)
    category = models.CharField(max_length=50, default="other")
    source = models.CharField(max_length=20, choices=SOURCE_CHOICES, default="manual")
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=DRAFT)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    external_id = models.TextField(blank=True)  # a source id, kept whole (pair ids join two of them)
    # Why a lead keeps a chosen side that fails validation (empty: the chosen side must validate).
    override = models.TextField(blank=True)
    # sha256 of context + both sides' content: an import or an accepted suggestion never duplicates a pair.
    content_key = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = PairQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The pair list filtered by status and category; dashboard counts; DPO selection (approved).
            models.Index(fields=["project", "status", "category"], name="pair_project_status"),
            # The pair list filtered by source; dashboard counts by source.
            models.Index(fields=["project", "source"], name="pair_project_source"),
            # De-duplication on import / accept: "does this project already hold this content?".
            models.Index(fields=["project", "content_key"], name="pair_project_content"),
        ]

    def __str__(self) -> str:
        return f"Pair {self.pk} ({self.category})"

    def get_absolute_url(self) -> str:
        return reverse("annotate:pair-detail", args=[self.pk])

    def to_core(self) -> core.Pair:
        return core.Pair.from_document({"context": self.context, "chosen": self.chosen, "rejected": self.rejected,
                                        "meta": {"category": self.category, "source": self.source,
                                                 "status": self.status, "note": self.note,
                                                 "external_id": self.external_id, "override": self.override}})

    def set_core(self, pair: core.Pair) -> None:
        """Copy a pure pair's content into this row (not saved)."""
        self.context = pair.context.to_dict()
        self.chosen = [s.to_dict() for s in pair.chosen]
        self.rejected = [s.to_dict() for s in pair.rejected]
        self.cut_turn, self.cut_step = pair.cut
        self.category = pair.category
        self.source = pair.source
        self.note = pair.note
        self.override = pair.override
        self.external_id = pair.external_id
        self.content_key = pair.content_key()

    def to_document(self) -> dict:
        """What a DPO snapshot pins (see ``training.snapshots.models.SnapshotPair``)."""
        doc = self.to_core().to_document()
        doc["meta"].update({"pair_id": self.pk, "trajectory_id": self.trajectory_id})
        return doc

    @property
    def user_message(self) -> str:
        turns = self.context.get("turns") or []
        return turns[-1].get("user", "") if turns else ""


class PairSuggestion(models.Model):
    """A pair implied by an annotator's correction, waiting for a lead to accept or dismiss it.

    Computed from revisions (the first one against the latest: the net correction), not on every
    save; see ``annotate.pairs.services.refresh_suggestions``.
    """

    PENDING, ACCEPTED, DISMISSED = "pending", "accepted", "dismissed"
    STATUS_CHOICES = [(PENDING, "Pending"), (ACCEPTED, "Accepted"), (DISMISSED, "Dismissed")]

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="pair_suggestions")
    trajectory = models.ForeignKey("annotate.Trajectory", on_delete=models.CASCADE, related_name="pair_suggestions")
    base_version = models.PositiveIntegerField(help_text="The revision holding the original continuation")
    version = models.PositiveIntegerField(help_text="The revision holding the correction")
    cut_turn = models.PositiveIntegerField()
    cut_step = models.PositiveIntegerField()
    context = OrderedJSONField()
    chosen = OrderedJSONField()
    rejected = OrderedJSONField()
    category = models.CharField(max_length=50, default="other")
    key = models.CharField(max_length=64, help_text="Pair.content_key of the suggested pair")
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=PENDING)
    corrected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    pair = models.ForeignKey(Pair, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trajectory_id", "cut_turn", "cut_step"]
        indexes = [
            # The suggestions page: a project's pending suggestions.
            models.Index(fields=["project", "status"], name="pairsugg_project_status"),
        ]
        constraints = [
            # A decided suggestion is never suggested again for the same trajectory.
            models.UniqueConstraint(fields=["trajectory", "key"], name="unique_pair_suggestion"),
        ]

    def to_core(self) -> core.Pair:
        return core.Pair.from_document({"context": self.context, "chosen": self.chosen, "rejected": self.rejected,
                                        "meta": {"category": self.category, "source": "correction"}})

    @property
    def user_message(self) -> str:
        turns = self.context.get("turns") or []
        return turns[-1].get("user", "") if turns else ""


class SuggestionScan(models.Model):
    """The trajectory version whose revisions were last scanned for suggestions."""

    trajectory = models.OneToOneField("annotate.Trajectory", on_delete=models.CASCADE, primary_key=True,
                                      related_name="suggestion_scan")
    version = models.PositiveIntegerField()
