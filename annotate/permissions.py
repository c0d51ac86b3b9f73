"""The one permission layer: every view and API endpoint asks these functions.

Roles: ``admin`` (a superuser: everything), ``lead`` and ``annotator`` (per project, through a
Membership). Outsiders get 404 for a project's objects, so ids reveal nothing.

What each role may do in a project:
- annotator: read the project, edit and submit trajectories assigned to them or unassigned;
- lead: all an annotator may do, plus import, review (approve / reject), assign, edit the tool
  catalog and guidelines, build pairs, snapshot, train and evaluate;
- admin: everything in every project, plus users and projects.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import permissions as drf_permissions

from annotate.models import Project

ADMIN, LEAD, ANNOTATOR = "admin", "lead", "annotator"
RANK = {ANNOTATOR: 1, LEAD: 2, ADMIN: 3}


def role_in(user, project) -> str | None:
    """The user's role in ``project``: 'admin', 'lead', 'annotator' or None (outsider)."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    cache = getattr(user, "_studio_roles", None)
    if cache is None:
        cache = dict(user.memberships.values_list("project_id", "role"))
        user._studio_roles = cache
    return cache.get(project.pk)


def projects_for(user):
    """The projects a user may see (a queryset)."""
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def require_role(user, project, minimum: str = ANNOTATOR) -> str:
    """Return the user's role, or raise: 404 for outsiders, 403 for too low a role."""
    role = role_in(user, project)
    if role is None:
        raise Http404("No such project")
    if RANK[role] < RANK[minimum]:
        raise PermissionDenied(f"This needs the {minimum} role in {project.name}.")
    return role


def project_for(user, slug: str, minimum: str = ANNOTATOR):
    """The project ``slug`` and the user's role in it; 404 if missing or for outsiders, 403 below ``minimum``.

    The one "get the project, then check the role" of every view, API endpoint and command.
    """
    try:
        project = Project.objects.get(slug=slug)
    except Project.DoesNotExist:
        raise Http404("No such project") from None
    return project, require_role(user, project, minimum)


def is_lead_anywhere(user) -> bool:
    return user.is_superuser or user.memberships.filter(role=LEAD).exists()


def can_edit_trajectory(user, trajectory) -> bool:
    role = role_in(user, trajectory.project)
    if role in (ADMIN, LEAD):
        return True
    if role == ANNOTATOR:
        return trajectory.status in ("draft", "rejected") and trajectory.assignee_id in (None, user.pk)
    return False


class ProjectRole(drf_permissions.BasePermission):
    """DRF permission: ``required_role`` on the view (default annotator) in ``get_project()``."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)


def author_of(user):
    """The user to record as author / creator of a change: None for no user or an anonymous one."""
    return user if getattr(user, "is_authenticated", False) else None
