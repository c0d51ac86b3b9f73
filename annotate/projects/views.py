"""Pages: a new project, a project's settings (leads), and the trajectory export download.

Each view reads: fetch → check permission → form → change → respond. Every section of the
settings page is its own small form; a refusal comes back under its field, with status 400.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from annotate import permissions
from annotate.formats import EXPORT_FORMATS
from annotate.models import Membership
from annotate.projects import rules, services
from annotate.projects.export import STATUSES, export_lines
from annotate.trajectory import CASE_TYPE_NAMES, CASE_TYPES
from core.errors import InputError


def new_project(request: HttpRequest) -> HttpResponse:
    if not services.can_create_projects(request.user):
        raise PermissionDenied("Only staff create projects here; ask an admin to create one or to make you staff.")
    values = {k: request.POST.get(k, "") for k in ("name", "slug", "description")}
    error = None
    if request.method == "POST":
        try:
            project = services.create_project(request.user, **values)
        except InputError as e:
            error = e
        else:
            messages.success(request, f"Created {project.name}. You are its lead; the steps below get it going.")
            return redirect(project)
    return render(request, "annotate/projects/new.html", {"values": values, "error": error},
                  status=400 if error else 200)


SECTIONS = ("general", "member-add", "member-role", "member-remove", "labels", "tools", "case-types")


def _apply(project, section: str, post) -> str:
    """Make one section's change; the message to show."""
    if section == "general":
        changed = services.update_general(project, {f: post.get(f, "") for f in services.GENERAL_FIELDS})
        return f"Saved {', '.join(changed)}." if changed else "Nothing changed."
    if section == "member-add":
        m = services.add_member(project, post.get("user", ""), post.get("role", Membership.ANNOTATOR))
        return f"Added {m.user.get_username()} as {m.role}."
    if section == "member-role":
        m = services.change_role(project, post.get("member", ""), post.get("role", ""))
        return f"{m.user.get_username()} is now {m.role}."
    if section == "member-remove":
        services.remove_member(project, post.get("member", ""))
        return f"Removed {post.get('member')} from {project.name}."
    if section == "labels":
        labels = services.update_labels(project, post.get("error_labels", ""))
        return f"Saved {len(labels)} error label{'s' if len(labels) != 1 else ''}."
    if section == "tools":
        tools = services.update_tools(project, post.get("tools", ""))
        return f"Saved {len(tools)} tool{'s' if len(tools) != 1 else ''}."
    if section == "case-types":
        chosen = services.update_case_types(project, post.getlist("required_case_types"))
        return f"{len(chosen)} case type{'s are' if len(chosen) != 1 else ' is'} now required."
    raise InputError(f"unknown section {section!r}", "section")


def _fresh(user):
    """The user without the per-request role cache (a membership just changed)."""
    if hasattr(user, "_studio_roles"):
        del user._studio_roles
    return user


def project_settings(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug, permissions.LEAD)
    error, section, posted = None, "", {}
    if request.method == "POST":
        section = request.POST.get("section", "")
        try:
            note = _apply(project, section, request.POST)
        except InputError as e:
            error, posted = e, request.POST
            project.refresh_from_db()
        else:
            messages.success(request, note)
            if section == "member-remove" and request.POST.get("member") == request.user.get_username() \
                    and permissions.role_in(_fresh(request.user), project) is None:
                return redirect("annotate:project-list")  # they left the project: its pages are closed to them
            anchor = section.split("-")[0] if section.startswith("member") else section
            return redirect(reverse("annotate:project-settings", args=[project.slug]) + f"#{anchor}")
    members = project.memberships.select_related("user").order_by("user__username")
    return render(request, "annotate/projects/settings.html", {
        "project": project, "role": role, "members": members, "roles": Membership.ROLE_CHOICES,
        "only_lead": members.filter(role=Membership.LEAD).count() == 1,
        "error": error, "section": section,
        "labels_text": posted.get("error_labels") if section == "labels" else rules.labels_text(project.error_labels),
        "tools_text": posted.get("tools") if section == "tools" else rules.tools_text(project.tool_specs()),
        "case_types": [(c, CASE_TYPE_NAMES.get(c, c), c in project.required_case_types) for c in CASE_TYPES],
        "add_user": posted.get("user", "") if section == "member-add" else "",
    }, status=400 if error else 200)


def export_trajectories(request: HttpRequest, slug: str) -> HttpResponse:
    """The export page; with ``download``, the JSONL file (the CLI's ``export_trajectories``)."""
    project, role = permissions.project_for(request.user, slug, permissions.LEAD)
    fmt, status = request.GET.get("format", "raw"), request.GET.get("status", "any")
    error = None
    if "download" in request.GET:
        try:
            lines = export_lines(project, fmt, status)
        except InputError as e:
            error = e
        else:
            name = f"{project.slug}-{status}-{fmt}-{timezone.now():%Y%m%d-%H%M}.jsonl"
            response = StreamingHttpResponse(lines, content_type="application/jsonl; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
    by_status = dict(project.trajectories.order_by().values_list("status").annotate(n=Count("id")))
    counts = [(s, sum(by_status.values()) if s == "any" else by_status.get(s, 0)) for s in STATUSES]
    return render(request, "annotate/projects/export.html", {
        "project": project, "role": role, "formats": EXPORT_FORMATS, "statuses": counts,
        "fmt": fmt, "status": status, "error": error}, status=400 if error else 200)
