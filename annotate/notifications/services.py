"""Creating notifications where work changes hands (called by the queue's assignment and the review workflow)."""

from __future__ import annotations

from django.urls import reverse

from annotate.notifications.models import Notification


def notify_assigned(project, ids: list[int], assignee, *, by=None, count: int | None = None) -> Notification | None:
    """One notification for one assignment (not one per trajectory); none for assigning oneself."""
    n = len(ids) if count is None else count
    if assignee is None or n == 0 or not ids or (by is not None and by.pk == assignee.pk):
        return None
    who = by.get_username() if by is not None else "A lead"
    if n == 1:
        message, url = f"{who} assigned you a trajectory in {project.name}", reverse(
            "annotate:trajectory-detail", args=[ids[0]])
    else:
        message = f"{who} assigned you {n} trajectories in {project.name}"
        url = reverse("annotate:trajectory-list", args=[project.slug]) + f"?assignee={assignee.pk}"
    return Notification.objects.create(user=assignee, project=project, kind=Notification.ASSIGNED,
                                       message=message[:500], url=url, actor=by)


def notify_rejected(trajectory, *, by, comment: str = "") -> Notification | None:
    """The assignee hears that their trajectory came back, with the reviewer's comment."""
    assignee = trajectory.assignee
    if assignee is None or (by is not None and by.pk == assignee.pk):
        return None
    who = by.get_username() if by is not None else "A reviewer"
    message = f"{who} rejected {trajectory}" + (f": {comment}" if comment else "")
    return Notification.objects.create(user=assignee, project=trajectory.project, kind=Notification.REJECTED,
                                       message=message[:500], url=trajectory.get_absolute_url(), actor=by)


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(user=user).unread().count()
