"""Pages: projects, a project's trajectories, one trajectory, import upload.

Each view reads: fetch → check permission → form → change → respond.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from annotate import permissions
from annotate.findings import validate
from annotate.forms import IMPORT_FORMATS, ImportForm
from annotate.importing import parse_file
from annotate.models import Project, Trajectory
from annotate.services import import_parsed
from annotate.trajectory import CASE_TYPE_NAMES


def project_list(request: HttpRequest) -> HttpResponse:
    projects = (permissions.projects_for(request.user)
                .annotate(n_trajectories=Count("trajectories", distinct=True)).order_by("name"))
    rows = [(p, permissions.role_in(request.user, p)) for p in projects]
    return render(request, "annotate/project_list.html", {"rows": rows})


def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_object_or_404(Project, slug=slug)
    role = permissions.require_role(request.user, project)
    trajectories = project.trajectories.all()
    by_status = dict(trajectories.values_list("status").annotate(n=Count("id")).order_by())
    coverage = {ct: trajectories.with_case_type(ct).count() for ct in CASE_TYPE_NAMES}
    return render(request, "annotate/project_detail.html", {
        "project": project, "role": role, "total": trajectories.count(),
        "by_status": [(s, label, by_status.get(s, 0)) for s, label in Trajectory.STATUS_CHOICES],
        "coverage": [(CASE_TYPE_NAMES[ct], n) for ct, n in coverage.items()],
        "imports": project.imports.all()[:5],
    })


def trajectory_list(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_object_or_404(Project, slug=slug)
    role = permissions.require_role(request.user, project)
    qs = project.trajectories.select_related("assignee").order_by("id")
    status = request.GET.get("status", "")
    if status:
        qs = qs.filter(status=status)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "annotate/trajectory_list.html", {
        "project": project, "role": role, "page": page, "status": status,
        "statuses": Trajectory.STATUS_CHOICES,
    })


def trajectory_detail(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
    role = permissions.require_role(request.user, trajectory.project)
    doc = trajectory.to_canonical()
    findings = validate(doc)
    by_step: dict[tuple[int, int], list] = {}
    for f in findings:
        by_step.setdefault((f.turn, f.step), []).append(f)
    turns = [
        {"index": ti, "user": turn.user,
         "steps": [{"index": si, "step": s, "findings": by_step.get((ti, si), [])} for si, s in enumerate(turn.steps)]}
        for ti, turn in enumerate(doc.turns)
    ]
    return render(request, "annotate/trajectory_detail.html", {
        "trajectory": trajectory, "project": trajectory.project, "role": role, "doc": doc, "turns": turns,
        "findings": findings,
    })


def import_trajectories(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_object_or_404(Project, slug=slug)
    permissions.require_role(request.user, project, permissions.LEAD)
    form = ImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        answers = form.cleaned_data.get("answers")
        if upload.size > settings.IMPORT_MAX_BYTES:
            form.add_error("file", f"{upload.name} is {upload.size:,} bytes; the limit is "
                                   f"{settings.IMPORT_MAX_BYTES:,} bytes (IMPORT_MAX_BYTES).")
        else:
            result = parse_file(upload.read(), upload.name, fmt=form.cleaned_data["format"],
                                max_bytes=settings.IMPORT_MAX_BYTES,
                                skip_invalid=form.cleaned_data["skip_invalid"],
                                answers=answers.read() if answers else None)
            outcome = import_parsed(project, result, filename=upload.name, fmt=form.cleaned_data["format"],
                                    user=request.user)
            if outcome.imported:
                messages.success(request, f"Imported {outcome.imported} trajectories from {upload.name}"
                                          + (f"; skipped {outcome.skipped} invalid records." if outcome.skipped else "."))
                if not outcome.skipped:
                    return redirect("annotate:trajectory-list", slug=project.slug)
            report = outcome
    return render(request, "annotate/import.html", {"project": project, "form": form, "report": report,
                                                    "formats": IMPORT_FORMATS})
