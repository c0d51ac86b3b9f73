"""Pages: projects, the dashboard, the queue and import (the editor's pages are
``annotate.workbench.views``).

Each view reads: fetch → check permission → form → change → respond.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from annotate import formats as import_formats, permissions
from annotate.forms import IMPORT_FORMATS, AssignForm, ImportForm, QueueFilterForm
from annotate.ingest import preview as import_preview
from annotate.ingest.sniff import is_not_text
from annotate.ingest.writer import import_file, import_upload
from annotate.models import Project, Trajectory
from annotate.trajectory import CASE_TYPE_NAMES, SPLITS
from annotate.workbench.dashboard import THIN_SHARE, dashboard
from annotate.workbench.queue import QueuePaginator, assign, members_of, next_in_queue, queue
from annotate.workbench.transitions import bulk_transition
from annotate.workbench.workflow import WorkflowError
from studio.forms import id_or_none, ids_of, next_path

PAGE_SIZE = 50
# A placeholder id in a reversed URL, replaced per row.
_PK = "555555555"


def project_list(request: HttpRequest) -> HttpResponse:
    projects = (permissions.projects_for(request.user)
                .annotate(n_trajectories=Count("trajectories", distinct=True)).order_by("name"))
    rows = [(p, permissions.role_in(request.user, p)) for p in projects]
    return render(request, "annotate/project_list.html", {"rows": rows})


# --- dashboard ---------------------------------------------------------------------------------------------

def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug)
    return render(request, "annotate/project_detail.html", {
        "project": project, "role": role, "dash": dashboard(project), "thin_percent": round(THIN_SHARE * 100),
        "imports": project.imports.all()[:5],
    })


# --- queue ---------------------------------------------------------------------------------------------

def queue_form(project: Project, data, members) -> QueueFilterForm:
    return QueueFilterForm(data, statuses=Trajectory.STATUS_CHOICES,
                           case_types=list(CASE_TYPE_NAMES.items()), labels=project.label_names(),
                           members=members, splits=[(s, s) for s in SPLITS])


def trajectory_list(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug)
    members = members_of(project)
    form = queue_form(project, request.GET, members)
    form.is_valid()  # invalid filters are reported and ignored; the valid ones still apply
    filters = form.cleaned_data
    page = QueuePaginator(queue(project, filters, request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    unsorted = params.copy()
    unsorted.pop("sort", None)
    sort = filters.get("sort") or "id"
    context = {
        "project": project, "role": role, "page": page, "rows": queue_rows(page), "form": form,
        "query": params.urlencode(), "sort_links": sort_links(unsorted.urlencode(), sort),
        "is_lead": role in (permissions.LEAD, permissions.ADMIN), "assign_form": AssignForm(None, members=members),
        "filtered": any(filters.get(k) for k in ("status", "case_type", "label", "assignee", "source", "split", "q")),
        # Kept for the foundation's template variables.
        "status": filters.get("status", ""), "statuses": Trajectory.STATUS_CHOICES,
    }
    template = "annotate/trajectory_list.html"
    if request.htmx and request.htmx.target == "queue-results":
        template += "#results"
    return render(request, template, context)


SORTABLE = {"id": ("id", "-id"), "title": ("title", "-title"), "steps": ("-step_count", "step_count"),
            "findings": ("-finding_count", "finding_count"), "edited": ("-updated_at", "updated_at")}


def sort_links(query: str, current: str) -> dict[str, dict]:
    """Per sortable column: the link that sorts by it (again: the other way round) and an arrow."""
    out = {}
    for column, (first_order, second_order) in SORTABLE.items():
        active = current in (first_order, second_order)
        order = second_order if current == first_order else first_order
        arrow = ("↓" if current.startswith("-") else "↑") if active else ""
        out[column] = {"href": f"?{query + '&' if query else ''}sort={order}", "arrow": arrow}
    return out


def queue_rows(page) -> list[dict]:
    """The queue's rows as plain values: fifty rows of method calls and filters in the template
    cost more than the queries behind them."""
    editor = reverse("annotate:trajectory-detail", args=[_PK])
    statuses = dict(Trajectory.STATUS_CHOICES)
    now = timezone.now()
    return [{"pk": t.pk, "url": editor.replace(_PK, str(t.pk)), "title": t.title or "(untitled)",
             "status": t.status, "status_label": statuses.get(t.status, t.status),
             "assignee": t.assignee.get_username() if t.assignee_id else "", "case_types": t.case_types,
             "steps": t.step_count, "findings": t.finding_count, "split": t.split, "source": t.source,
             "age": short_age(now - t.updated_at), "updated": t.updated_at.strftime("%Y-%m-%d %H:%M")}
            for t in page]


def short_age(delta) -> str:
    """ "just now", "5 min", "3 h", "12 d" """
    seconds = delta.total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def next_trajectory(request: HttpRequest, slug: str) -> HttpResponse:
    """"Next in my queue" (POST: it may claim an unassigned trajectory)."""
    project, _ = permissions.project_for(request.user, slug)
    if request.method != "POST":
        return redirect("annotate:trajectory-list", slug=project.slug)
    after = request.POST.get("after")
    found = next_in_queue(request.user, project, after=id_or_none(after))
    if found is None:
        messages.info(request, "Your queue is empty: nothing is assigned to you and no draft is unassigned.")
        return redirect("annotate:trajectory-list", slug=project.slug)
    return redirect(found)


def assign_trajectories(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
    if request.method != "POST":
        return redirect("annotate:trajectory-list", slug=project.slug)
    members = members_of(project)
    form = AssignForm(request.POST, members=members)
    ids = ids_of(request.POST.getlist("ids"))
    back = _safe_next(request, reverse("annotate:trajectory-list", args=[project.slug]))
    if not form.is_valid() or not ids:
        messages.error(request, "Tick the trajectories to assign and choose someone.")
        return redirect(back)
    who = next((u for u in members if str(u.pk) == form.cleaned_data["assignee"]), None)
    n = assign(project, ids, who, by=request.user)
    messages.success(request, f"Assigned {n} trajector{'y' if n == 1 else 'ies'} to "
                              f"{who.get_username() if who else 'nobody'}.")
    return redirect(back)


BULK_DONE = {"submit": "Submitted", "approve": "Approved", "reject": "Rejected", "reopen": "Reopened"}


def bulk_action(request: HttpRequest, slug: str) -> HttpResponse:
    """The queue's bulk buttons: assign (leads), or submit / approve / reject / reopen each ticked
    trajectory as its own move (roles and states checked per item; refusals say which and why)."""
    project, _ = permissions.project_for(request.user, slug)
    back = _safe_next(request, reverse("annotate:trajectory-list", args=[project.slug]))
    if request.method != "POST":
        return redirect(back)
    action = request.POST.get("action", "")
    if action == "assign":
        return assign_trajectories(request, slug)
    ids = ids_of(request.POST.getlist("ids"))
    if not ids:
        messages.error(request, "Tick the trajectories first.")
        return redirect(back)
    try:
        outcome = bulk_transition(project, ids, action, user=request.user, comment=request.POST.get("comment", ""))
    except WorkflowError as e:
        messages.error(request, f"{'Comment' if e.field == 'comment' else 'Action'}: {e.message}.")
        return redirect(back)
    if outcome.done:
        n = len(outcome.done)
        messages.success(request, f"{BULK_DONE[action]} {n} trajector{'y' if n == 1 else 'ies'}.")
    for r in outcome.refused:
        messages.error(request, f"#{r['id']} not {BULK_DONE[action].lower()}: {r['message']}")
    return redirect(back)


def _safe_next(request: HttpRequest, default: str) -> str:
    return next_path(request) or default


# --- import (foundation) ----------------------------------------------------------------------------------

def import_trajectories(request: HttpRequest, slug: str) -> HttpResponse:
    """Upload a file; "Preview" shows what would be written and keeps the file until "Import" confirms."""
    project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
    if request.method == "POST" and request.POST.get("token"):
        return _confirm_import(request, project)
    form = ImportForm(request.POST or None, request.FILES or None)
    report = summary = token = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            form.add_error("file", f"{upload.name} is {upload.size:,} bytes; the limit is "
                                   f"{settings.IMPORT_MAX_BYTES:,} bytes (IMPORT_MAX_BYTES).")
        elif request.POST.get("action") == "preview":
            files = {part: (f.name, f.read()) for part in import_preview.PARTS
                     if (f := form.cleaned_data.get(part)) is not None}
            options = {"format": form.cleaned_data["format"], "skip_invalid": form.cleaned_data["skip_invalid"]}
            summary = _preview_of(files, options)
            if summary["would_import"]:
                token = import_preview.stash(project.pk, request.user.pk, files, options)
        else:
            outcome = import_upload(project, upload, fmt=form.cleaned_data["format"],
                                    skip_invalid=form.cleaned_data["skip_invalid"],
                                    answers=form.cleaned_data.get("answers"), tools=form.cleaned_data.get("tools"),
                                    user=request.user)
            done = _import_done(request, project, outcome, upload.name)
            if done is not None:
                return done
            report = outcome
    return render(request, "annotate/import.html", {"project": project, "form": form, "report": report,
                                                    "report_more": _more(report),
                                                    "summary": summary, "token": token,
                                                    "formats": IMPORT_FORMATS, "not_text": _not_text(summary, report),
                                                    **_format_help()})


def _preview_of(files: dict[str, tuple[str, bytes]], options: dict) -> dict:
    name, data = files["file"]
    answers, tools = files.get("answers"), files.get("tools")
    return import_preview.preview(data, name, fmt=options["format"], skip_invalid=options["skip_invalid"],
                                  answers=answers[1] if answers else None, answers_filename=answers[0] if answers else "",
                                  tools=tools[1] if tools else None, tools_filename=tools[0] if tools else "")


def _confirm_import(request: HttpRequest, project: Project) -> HttpResponse:
    token = request.POST["token"]
    kept = import_preview.unstash(project.pk, request.user.pk, token)
    if kept is None:
        messages.error(request, "That preview has expired or is not yours; upload the file again.")
        return redirect("annotate:import", slug=project.slug)
    files, options = kept
    name, data = files["file"]
    answers, tools = files.get("answers"), files.get("tools")
    outcome = import_file(project, data, name, fmt=options["format"], skip_invalid=options["skip_invalid"],
                          answers=answers[1] if answers else None, answers_filename=answers[0] if answers else "",
                          tools=tools[1] if tools else None, tools_filename=tools[0] if tools else "",
                          user=request.user)
    import_preview.drop(token)
    done = _import_done(request, project, outcome, name)
    if done is not None:
        return done
    return render(request, "annotate/import.html", {"project": project, "form": ImportForm(), "report": outcome,
                                                    "report_more": _more(outcome),
                                                    "formats": IMPORT_FORMATS, "not_text": _not_text(None, outcome),
                                                    **_format_help()})


# The import report lists this many problems (the rest are counted under them).
REPORT_ROWS = 200


def _more(outcome) -> int:
    """How many problems of an import's report are not among its REPORT_ROWS rows."""
    return outcome.more_than(REPORT_ROWS) if outcome is not None else 0


def _format_help() -> dict:
    """What the import page says it takes: the format names and one example (the raw format's)."""
    raw = import_formats.FORMATS["raw"]
    return {"format_names": [f.name for f in import_formats.FORMATS.values()],
            "format_example": json.dumps(raw.example, ensure_ascii=False)}


def import_formats_help(request: HttpRequest) -> HttpResponse:
    """The README's format table, from the same registry: every format, its rule and an example."""
    rows = [{"name": f.name, "aliases": f.aliases, "rule": f.rule, "title": f.title,
             "example": json.dumps(f.example, ensure_ascii=False, indent=1)} for f in import_formats.FORMATS.values()]
    return render(request, "annotate/import_formats.html", {"rows": rows})


def _not_text(summary: dict | None, report) -> bool:
    """Whether the upload was refused as a binary file (then "skip invalid" would not help)."""
    errors = (summary or {}).get("errors") or (report.errors if report is not None else [])
    return is_not_text(errors)


def _import_done(request: HttpRequest, project: Project, outcome, filename: str) -> HttpResponse | None:
    """The redirect after a clean import (with its message), or None to show the report."""
    if outcome.imported:
        messages.success(request, f"Imported {outcome.imported} trajectories from {filename}"
                                  + (f"; skipped {outcome.skipped} invalid records." if outcome.skipped else "."))
        if not outcome.skipped:
            return redirect("annotate:trajectory-list", slug=project.slug)
    return None
