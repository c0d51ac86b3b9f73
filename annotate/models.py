"""Projects, tools, trajectories with their turns and steps, labels, revisions, memberships.

The canonical document (``annotate.trajectory.Trajectory``) is stored normalised: a Trajectory
row, its Turn rows (user message) and Step rows (think / tool_call / tool_result / answer),
with labels as StepLabel rows so the queue can filter by label. ``Trajectory.to_canonical()``
rebuilds the document; ``Revision`` keeps a full snapshot of it per save.
"""

from __future__ import annotations

import math

from django.conf import settings
from django.db import connections, models
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.urls import reverse
from django.utils import timezone

from annotate.search import fts_query, search_terms, tsquery
from annotate.trajectory import CASE_TYPES, DEFAULT_ERROR_LABELS, Meta, case_type_columns, Step as CanonicalStep
from annotate.trajectory import Trajectory as CanonicalTrajectory
from annotate.trajectory import Turn as CanonicalTurn
from studio.fields import OrderedJSONField


def default_error_labels() -> list[dict]:
    return [{"name": n, "description": d} for n, d in DEFAULT_ERROR_LABELS]


def default_required_case_types() -> list[str]:
    return list(CASE_TYPES)


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True)
    # The error-label taxonomy annotators pick from: [{"name", "description"}].
    error_labels = models.JSONField(default=default_error_labels)
    # Case types the guidelines require; the dashboard warns when one is missing or thin.
    required_case_types = models.JSONField(default=default_required_case_types)
    target_template = models.CharField(max_length=500, blank=True, default="qwen3",
                                       help_text="Chat template family, model folder or template file")
    target_tokenizer = models.CharField(max_length=500, blank=True,
                                        help_text="Local tokenizer folder (empty: the demo's tiny one)")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("annotate:project-detail", args=[self.slug])

    def label_names(self) -> list[str]:
        return [lab["name"] for lab in self.error_labels]

    def tool_specs(self) -> list[dict]:
        return [t.spec() for t in self.tools.order_by("name")]


class Membership(models.Model):
    LEAD = "lead"
    ANNOTATOR = "annotator"
    ROLE_CHOICES = [(LEAD, "Lead"), (ANNOTATOR, "Annotator")]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=ROLE_CHOICES, default=ANNOTATOR)

    class Meta:
        # Serves the permission check "role of user U in project P" (every request).
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="one_membership_per_user")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.project}"


class Tool(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    parameters = OrderedJSONField(default=dict)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_tool_name")]

    def __str__(self) -> str:
        return self.name

    def spec(self) -> dict:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


class TrajectoryQuerySet(models.QuerySet):
    def for_user(self, user):
        from annotate.permissions import projects_for  # (permissions imports the models)

        return self.filter(project__in=projects_for(user))

    def with_case_type(self, case_type: str):
        return self.filter(case_types_index__contains=f"|{case_type}|")

    def with_label(self, label: str):
        """Trajectories with at least one step carrying error label ``label``."""
        return self.filter(pk__in=StepLabel.objects.filter(label=label).values("trajectory_id"))

    def search(self, query: str, wanted: int = 1000):
        """Trajectories whose user messages or steps contain every word of ``query`` (as prefixes).

        ``wanted``: about how many of them the caller reads (the queue: its count's limit); it
        chooses the plan on PostgreSQL, never the rows found.

        SQLite: the FTS5 index ``annotate_trajectory_search``; PostgreSQL: a table of the same
        name with a ``tsvector`` per trajectory and a GIN index (both kept by ``annotate.ingest.writer``);
        elsewhere a portable, slower scan of turns and steps.
        """
        terms = search_terms(query)
        if not terms:
            return self
        if search_index_enabled(self.db):
            if connections[self.db].vendor == "postgresql":
                return self._search_postgres(terms, tsquery(query), wanted)
            match = fts_query(query)
            return self.filter(pk__in=RawSQL(SQLITE_SEARCH, [match, match]))
        qs = self
        for term in terms:
            in_steps = Step.objects.filter(Q(text__icontains=term) | Q(name__icontains=term) | Q(note__icontains=term)
                                           | Q(arguments__icontains=term)).values("trajectory_id")
            in_turns = Turn.objects.filter(user__icontains=term).values("trajectory_id")
            qs = qs.filter(Q(pk__in=in_steps) | Q(pk__in=in_turns))
        return qs

    def _search_postgres(self, terms: list[str], query: str, wanted: int):
        """The PostgreSQL search, in the plan that suits how common the words are.

        Common words (together in at least ``walk_threshold`` of the documents, by the column's
        statistics): walk the trajectories in the queue's order and test each one's document (a
        page of 50 reads about 50 / share of them, and stops). Rarer words: the GIN index first
        (a bitmap of the matches; cheap when they are few), then those trajectories. The planner
        cannot choose by itself: it estimates every prefix word at 2% when the column has fewer
        than 100 common lexemes, so it walked for rare words (every row read to find none) and
        took the index for common ones (every match read and sorted for one page).
        """
        if common_share(self.db, terms) >= walk_threshold(self.db, wanted):
            return self.filter(RawSQL(
                f"(SELECT s.document @@ to_tsquery('simple', %s) FROM {SEARCH_TABLE} s "
                f"WHERE s.trajectory_id = {Trajectory._meta.db_table}.id)", [query], output_field=models.BooleanField()))
        # (ARRAY(...) is computed once, from the GIN index, whatever the planner's estimate)
        return self.filter(RawSQL(
            f"{Trajectory._meta.db_table}.id = ANY(ARRAY(SELECT trajectory_id FROM {SEARCH_TABLE} "
            f"WHERE document @@ to_tsquery('simple', %s)))", [query], output_field=models.BooleanField()))


# The full-text index over every user message and step, written by annotate.ingest.writer: SQLite
# FTS5 or, on PostgreSQL, a table of (trajectory_id, document tsvector) with a GIN index (migration
# 0004_postgres_search). The SQLite index keeps tokens only (``content=''``, migration
# 0017_search_index_without_copies), which SQLite 3.40 cannot delete: an imported trajectory's
# entry has the trajectory's id as rowid; each save writes a new entry, rowid ``-document``, and
# SEARCH_DOCUMENTS maps the trajectory to that current entry (a trigger drops the mapping with the
# trajectory). SQLITE_SEARCH takes each trajectory's current entry only.
SEARCH_TABLE = "annotate_trajectory_search"
SEARCH_DOCUMENTS = "annotate_search_document"
# (as migration 0017 made it; annotate.ingest.writer.rebuild_search_index makes it anew)
SQLITE_SEARCH_TABLE_SQL = (f"CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5(text, content = '', "
                           "tokenize = 'unicode61 remove_diacritics 2', columnsize = 0, detail = none)")
SQLITE_SEARCH = (
    f"SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH %s AND rowid > 0 AND NOT EXISTS "
    f"(SELECT 1 FROM {SEARCH_DOCUMENTS} d WHERE d.trajectory_id = {SEARCH_TABLE}.rowid) "
    f"UNION ALL SELECT d.trajectory_id FROM {SEARCH_TABLE} JOIN {SEARCH_DOCUMENTS} d "
    f"ON d.document = -{SEARCH_TABLE}.rowid WHERE {SEARCH_TABLE} MATCH %s AND {SEARCH_TABLE}.rowid < 0")
_search_index: dict[str, bool] = {}


def search_index_enabled(alias: str = "default") -> bool:
    """Whether the FTS5 search index exists on database ``alias`` (checked once per process)."""
    if alias not in _search_index:
        conn = connections[alias]
        ok = False
        if conn.vendor == "sqlite":
            with conn.cursor() as c:
                c.execute("SELECT 1 FROM sqlite_master WHERE name = %s", [SEARCH_TABLE])
                ok = c.fetchone() is not None
        elif conn.vendor == "postgresql":
            with conn.cursor() as c:
                c.execute("SELECT to_regclass(%s) IS NOT NULL", [SEARCH_TABLE])
                ok = bool(c.fetchone()[0])
        _search_index[alias] = ok
    return _search_index[alias]


# When a search walks the queue in order rather than taking the GIN index first (see
# TrajectoryQuerySet._search_postgres). Walking, the queue's count of ``wanted`` rows reads about
# wanted / share documents; the index reads every match, share x documents, each about GIN_COST times
# dearer (a heap page per match, then its trajectory: 54,687 matches took 670 ms for the page and its
# count at 1M trajectories, ~12 us each; the walk tested 8,558 rows in 17 ms, ~2 us each). The two are
# equal at share = sqrt(wanted / (GIN_COST x documents)): 1.4% at 1M trajectories, 4.5% at 100k.
# Never above WALK_SHARE: a page of 50 then reads at most 1,000 documents.
WALK_SHARE = 0.05
GIN_COST = 5


def walk_threshold(alias: str, wanted: int) -> float:
    """The share of documents from which walking is the cheaper plan (see GIN_COST)."""
    with connections[alias].cursor() as c:
        c.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [SEARCH_TABLE])
        row = c.fetchone()
    documents = max(1.0, float(row[0]) if row else 1.0)  # (-1 before the first ANALYZE)
    return min(WALK_SHARE, math.sqrt(wanted / (GIN_COST * documents)))


def common_share(alias: str, terms: list[str]) -> float:
    """The share of search documents that hold every word of ``terms`` (each as a prefix), as
    the column's statistics (``pg_stats.most_common_elems``) tell it; 0 where a word is not
    among the common lexemes, or without statistics. Words are taken as independent."""
    with connections[alias].cursor() as c:
        c.execute("SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
                  "WHERE tablename = %s AND attname = 'document'", [SEARCH_TABLE])
        row = c.fetchone()
    if not row or not row[0]:
        return 0.0
    lexemes, freqs = row[0], row[1]
    share = 1.0
    for term in terms:
        prefix = term.lower()
        share *= min(1.0, sum(f for lexeme, f in zip(lexemes, freqs) if lexeme.startswith(prefix)))
    return share


class Trajectory(models.Model):
    DRAFT, SUBMITTED, APPROVED, REJECTED = "draft", "submitted", "approved", "rejected"
    STATUS_CHOICES = [(DRAFT, "Draft"), (SUBMITTED, "Submitted"), (APPROVED, "Approved"), (REJECTED, "Rejected")]
    SPLIT_CHOICES = [("train", "train"), ("eval", "eval"), ("test", "test")]

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="trajectories")
    title = models.CharField(max_length=300, blank=True)
    external_id = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=300, blank=True)
    system = models.TextField(blank=True)
    # Tool specs as the trajectory saw them (usually the project catalog at import time).
    tools = OrderedJSONField(default=list, blank=True)
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=DRAFT)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                 on_delete=models.SET_NULL, related_name="assigned_trajectories")
    reviewer_comment = models.TextField(blank=True)
    # Optimistic locking: every save must name the version it was based on.
    version = models.PositiveIntegerField(default=1)
    case_types = models.JSONField(default=list, blank=True)
    # "|tool_required|multi_turn|": a portable LIKE filter for case types (JSON contains is
    # not available on SQLite).
    case_types_index = models.CharField(max_length=300, blank=True, default="")
    split = models.CharField(max_length=10, choices=SPLIT_CHOICES, default="train")
    tags = models.JSONField(default=list, blank=True)
    reference = OrderedJSONField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    step_count = models.PositiveIntegerField(default=0)
    finding_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = TrajectoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "trajectories"
        ordering = ["id"]
        indexes = [
            # Queue: a project's trajectories filtered by status, newest edits first.
            models.Index(fields=["project", "status", "updated_at"], name="traj_queue_status"),
            # "Next in my queue": an annotator's open trajectories in a project.
            models.Index(fields=["project", "assignee", "status"], name="traj_queue_assignee"),
            # Queue filter by split.
            models.Index(fields=["project", "split"], name="traj_project_split"),
            # Queue filter by source.
            models.Index(fields=["project", "source"], name="traj_project_source"),
            # Queue filter by case type (LIKE over a covering index, not the wide rows) and the
            # dashboard's coverage counts (one GROUP BY over the same index).
            models.Index(fields=["project", "case_types_index"], name="traj_project_casetypes"),
        ]

    def __str__(self) -> str:
        return self.title or f"Trajectory {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("annotate:trajectory-detail", args=[self.pk])

    def set_case_types(self, case_types: list[str]) -> None:
        self.case_types, self.case_types_index = case_type_columns(case_types)

    def to_canonical(self) -> CanonicalTrajectory:
        turns = list(self.turns.order_by("index").values_list("index", "user", "extra"))
        steps = list(Step.objects.filter(trajectory=self).order_by("turn_index", "position")
                     .prefetch_related("labels"))
        by_turn: dict[int, list[CanonicalStep]] = {}
        for s in steps:
            by_turn.setdefault(s.turn_index, []).append(s.to_canonical())
        return self._document(turns, by_turn)

    def _document(self, turns: list[tuple[int, str, dict]], steps: dict[int, list[CanonicalStep]]) -> CanonicalTrajectory:
        """The document of this row with its ``(index, user, extra)`` turns and their steps by turn index."""
        return CanonicalTrajectory(
            system=self.system,
            tools=list(self.tools),
            turns=[CanonicalTurn(user=user, steps=steps.get(index, []), extra=dict(extra or {}))
                   for index, user, extra in turns],
            meta=Meta(source=self.source, external_id=self.external_id, case_types=list(self.case_types),
                      split=self.split, tags=list(self.tags), reference=self.reference,
                      extra=dict(self.extra)),
        )


def documents_of(ids: list[int], chunk: int = 500) -> dict[int, CanonicalTrajectory]:
    """The documents of trajectories ``ids`` read from their rows (as ``to_canonical``), four
    queries per ``chunk`` trajectories instead of three per trajectory."""
    out: dict[int, CanonicalTrajectory] = {}
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        labels: dict[int, list[str]] = {}
        for step_id, label in StepLabel.objects.filter(trajectory_id__in=part).values_list("step_id", "label"):
            labels.setdefault(step_id, []).append(label)
        steps: dict[int, dict[int, list[CanonicalStep]]] = {}
        for (sid, tid, turn_index, kind, text, name, arguments, call_id, ok, note, train, extra) in (
                Step.objects.filter(trajectory_id__in=part).order_by("trajectory_id", "turn_index", "position")
                .values_list("id", "trajectory_id", "turn_index", "kind", "text", "name", "arguments", "call_id",
                             "ok", "note", "train", "extra")):
            steps.setdefault(tid, {}).setdefault(turn_index, []).append(CanonicalStep(
                kind=kind, text=text, name=name, arguments=arguments if kind == "tool_call" else None,
                call_id=call_id, ok=ok, labels=labels.get(sid, []), note=note, train=train, extra=extra or {}))
        turns: dict[int, list[tuple[int, str, dict]]] = {}
        for tid, index, user, extra in (Turn.objects.filter(trajectory_id__in=part).order_by("trajectory_id", "index")
                                        .values_list("trajectory_id", "index", "user", "extra")):
            turns.setdefault(tid, []).append((index, user, extra))
        for t in Trajectory.objects.filter(pk__in=part):
            out[t.pk] = t._document(turns.get(t.pk, []), steps.get(t.pk, {}))
    return out


class Turn(models.Model):
    # (looked up through unique_turn_index, which starts with it)
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="turns", db_index=False)
    index = models.PositiveIntegerField()
    user = models.TextField(blank=True)
    # The source's values for this turn with no canonical place (read-only; see Turn.extra).
    extra = OrderedJSONField(default=dict, blank=True)

    class Meta:
        ordering = ["index"]
        # Serves loading a trajectory's turns in order (editor, render, export).
        constraints = [models.UniqueConstraint(fields=["trajectory", "index"], name="unique_turn_index")]


class Step(models.Model):
    KIND_CHOICES = [("think", "Think"), ("tool_call", "Tool call"), ("tool_result", "Tool result"),
                    ("answer", "Answer")]

    # (looked up through step_order, which starts with it)
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="steps", db_index=False)
    turn_index = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    text = models.TextField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    arguments = OrderedJSONField(null=True, blank=True)
    call_id = models.CharField(max_length=200, blank=True)
    ok = models.BooleanField(default=True)
    note = models.TextField(blank=True)
    train = models.BooleanField(default=True)
    # The source's values for this step with no canonical place (read-only; see Step.extra).
    extra = OrderedJSONField(default=dict, blank=True)

    class Meta:
        ordering = ["turn_index", "position"]
        indexes = [
            # Loading a trajectory's steps in order (editor, render, export).
            models.Index(fields=["trajectory", "turn_index", "position"], name="step_order"),
        ]

    def to_canonical(self) -> CanonicalStep:
        return CanonicalStep(kind=self.kind, text=self.text, name=self.name,
                             arguments=self.arguments if self.kind == "tool_call" else None,
                             call_id=self.call_id, ok=self.ok,
                             labels=[lab.label for lab in self.labels.all()],
                             note=self.note, train=self.train, extra=dict(self.extra or {}))


class StepLabel(models.Model):
    # (looked up through unique_step_label, which starts with it)
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="labels", db_index=False)
    # Denormalised so the queue can filter "trajectories with label L" without joining steps.
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="step_labels")
    label = models.CharField(max_length=100)

    class Meta:
        ordering = ["label"]
        indexes = [
            # Queue filter and dashboard counts: trajectories carrying error label L.
            models.Index(fields=["label", "trajectory"], name="steplabel_label"),
        ]
        constraints = [models.UniqueConstraint(fields=["step", "label"], name="unique_step_label")]


class Revision(models.Model):
    """A full snapshot of the canonical trajectory after each save."""

    # (looked up through unique_revision_version, which starts with it)
    trajectory = models.ForeignKey(Trajectory, on_delete=models.CASCADE, related_name="revisions", db_index=False)
    version = models.PositiveIntegerField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    summary = models.CharField(max_length=300, blank=True)
    # The trajectory's review status after this revision (workflow moves make revisions too,
    # so the history shows who submitted, approved or rejected).
    status = models.CharField(max_length=20, blank=True, default="")
    document = OrderedJSONField()

    class Meta:
        ordering = ["-version"]
        constraints = [
            # Serves the history page and "document at version V" (snapshots pin revisions).
            models.UniqueConstraint(fields=["trajectory", "version"], name="unique_revision_version"),
        ]


class ImportBatch(models.Model):
    """One uploaded file (UI, API or CLI) and what became of it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    filename = models.CharField(max_length=500)
    fmt = models.CharField(max_length=30)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    imported = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "import batches"
        ordering = ["-created_at"]


from annotate.pairs.models import Pair, PairCategory, PairSuggestion, SuggestionScan  # noqa: E402,F401  (preference pairs)
from annotate.suggestions.models import StepSuggestion  # noqa: E402,F401  (a judge model's proposed labels)
from annotate.adjudication.models import Adjudication  # noqa: E402,F401  (a lead's step-by-step decision over versions)
from annotate.agreement.models import AgreementReport, OverlapSettings, OverlapVersion  # noqa: E402,F401  (overlap, agreement)
from annotate.notifications.models import Notification  # noqa: E402,F401  (in-app notifications)
