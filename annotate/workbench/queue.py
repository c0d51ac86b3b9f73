"""The work queue: the project's trajectories filtered and sorted, the next one to work on or to
review, and assignment (shared by the pages and the API)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

from annotate import permissions
from annotate.agreement import services as overlap
from annotate.models import Project, Trajectory
from annotate.notifications.services import notify_assigned


def members_of(project: Project) -> list:
    """The project's members (users), by name: the assignee choices."""
    return [m.user for m in project.memberships.select_related("user").order_by("user__username")]


def assign(project: Project, ids: list[int], assignee, *, by=None) -> int:
    """Assign (or, with ``assignee`` None, unassign) the project's trajectories ``ids``; the assignee hears of it.

    Overlap versions are left out: the queue hands them out blind, one per annotator.
    """
    rows = overlap.canonical(Trajectory.objects.filter(project=project, pk__in=ids))
    found = sorted(rows.values_list("id", flat=True)) if assignee is not None else []
    n = rows.update(assignee=assignee)
    notify_assigned(project, found, assignee, by=by, count=n)
    return n


OPEN_STATUSES = (Trajectory.DRAFT, Trajectory.REJECTED)


def next_in_queue(user, project: Project, *, after: int | None = None) -> Trajectory | None:
    """The next trajectory for ``user`` to work on, after ``after`` (wrapping around).

    Leads review first (submitted trajectories), then their own open work. Annotators get their
    assigned open work (rejected first: a reviewer is waiting), then claim an unassigned draft:
    the claim is a conditional update, so two annotators never get the same one.
    """
    role = permissions.role_in(user, project)
    mine = project.trajectories.filter(assignee=user, status__in=OPEN_STATUSES)
    queues = [mine.filter(status=Trajectory.REJECTED), mine.filter(status=Trajectory.DRAFT)]
    if role in (permissions.LEAD, permissions.ADMIN):
        queues.insert(0, project.trajectories.filter(status=Trajectory.SUBMITTED))
    for qs in queues:
        found = _first_after(qs, after)
        if found is not None:
            return found
    version = overlap.claim_version(user, project)  # overlap: a blind version before a plain draft
    if version is not None:
        return version
    for _ in range(5):  # a claim can lose a race; try the next one
        candidate = _first_after(overlap.plain_drafts(project).filter(assignee__isnull=True, status=Trajectory.DRAFT), after)
        if candidate is None:
            return None
        if Trajectory.objects.filter(pk=candidate.pk, assignee__isnull=True).update(assignee=user) == 1:
            candidate.assignee = user
            return candidate
    return None


def next_to_review(project: Project, *, after: int | None = None) -> Trajectory | None:
    """The next submitted trajectory after ``after`` (wrapping around), for a reviewer."""
    return _first_after(project.trajectories.filter(status=Trajectory.SUBMITTED), after)


def _first_after(qs, after: int | None) -> Trajectory | None:
    qs = qs.order_by("id")
    if after is not None:
        found = qs.filter(pk__gt=after).first()
        if found is not None:
            return found
        return qs.exclude(pk=after).first()
    return qs.first()


QUEUE_SORTS = ("id", "-id", "updated_at", "-updated_at", "finding_count", "-finding_count", "step_count",
               "-step_count", "title", "-title")


def queue(project: Project, filters: dict, user):
    """The project's trajectories narrowed by the queue's filters, in the chosen order.

    ``filters``: status, case_type, label, assignee ("me", "none" or a user id), source, split,
    q (words in any step), sort (one of QUEUE_SORTS). Empty values do not filter.
    """
    qs = overlap.visible_to(Trajectory.objects.filter(project=project), user, project)  # (blind overlap)
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("case_type"):
        qs = qs.with_case_type(filters["case_type"])
    if filters.get("label"):
        qs = qs.with_label(filters["label"])
    assignee = filters.get("assignee")
    if assignee == "me":
        qs = qs.filter(assignee=user)
    elif assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif assignee:
        qs = qs.filter(assignee_id=int(assignee))
    if filters.get("source"):
        qs = qs.filter(source=filters["source"])
    if filters.get("split"):
        qs = qs.filter(split=filters["split"])
    if filters.get("q"):
        qs = qs.search(filters["q"], wanted=COUNT_LIMIT)
    sort = filters.get("sort") or "id"
    if sort not in QUEUE_SORTS:
        sort = "id"
    order = [sort] if sort.lstrip("-") == "id" else [sort, "id"]
    # The queue shows a few columns; leave the big ones (system prompt, tool specs) unread.
    return (qs.select_related("assignee").order_by(*order)
            .only("id", "project_id", "title", "status", "case_types", "split", "source", "step_count",
                  "finding_count", "updated_at", "version", "assignee__id", "assignee__username"))


# The queue counts its rows up to this many (or to the end of the requested page, when further), then
# says "more than" (the page and the API alike): counting every match of a filter or a search costs as
# much as reading them all, at a million trajectories most of a second (a page of 50 reads its own rows).
COUNT_LIMIT = 1000


MAX_PAGE = 10**9  # (a page number past it is counted as this one: the bound stays a valid LIMIT)


class QueuePaginator(Paginator):
    """A Paginator whose count stops at ``COUNT_LIMIT`` (or the end of the requested page, if further).

    ``count`` is exact when ``capped`` is False; otherwise more than ``count_shown`` rows match and
    there is a next page (``count`` is one more than the rows of the pages so far, so ``has_next`` holds).
    """

    limit = COUNT_LIMIT

    def validate_number(self, number):
        if "count" not in self.__dict__:  # (the count follows the first page asked for)
            try:
                self._wanted = min(max(1, int(number)), MAX_PAGE)
            except (TypeError, ValueError):
                self._wanted = 1
        return super().validate_number(number)

    @cached_property
    def count(self) -> int:
        bound = max(self.limit, getattr(self, "_wanted", 1) * self.per_page) + 1
        # (any ``bound`` rows: without the order, the database need not read them all to sort them)
        return self.object_list.order_by()[:bound].count()

    @property
    def capped(self) -> bool:
        return self.count > max(self.limit, getattr(self, "_wanted", 1) * self.per_page)

    @property
    def count_shown(self) -> int:
        """The count as the page and the API show it: the rows counted, less the one past the bound."""
        return self.count - 1 if self.capped else self.count
