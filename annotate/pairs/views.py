"""Pages for preference pairs: list, builder (fork here), detail + review, suggestions, import, export, dashboard.

Each view reads: fetch → check permission → form → change → respond. Reading pairs needs a role
in the project; building, reviewing, importing and exporting them needs the lead role.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.text import slugify
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from annotate import permissions
from annotate.models import Project, Trajectory
from annotate.pairs import core, services
from annotate.pairs.models import Pair, PairCategory, PairSuggestion, categories_for
from annotate.pairs.starters import STARTERS, StarterError, new_call_id, placeholder_arguments, starter_steps
from annotate.trajectory import STEP_KINDS, Step
from core import strict_json
from studio.forms import ids_of

MAX_STEPS_PER_SIDE = 200


# Reading the builder form ----------------------------------------------------------------------


def _arguments(raw: str):
    """Parsed JSON arguments; text that does not parse is kept as the raw string the model wrote
    (only the ``format`` category accepts that on the rejected side; validation says so)."""
    if not raw.strip():
        return {}
    try:
        return strict_json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return raw


def steps_from_post(data, side: str) -> list[Step]:
    """One side's steps from the builder form: fields ``<side>-<i>-<field>`` and ``<side>-count``."""
    try:
        n = min(int(data.get(f"{side}-count", 0)), MAX_STEPS_PER_SIDE)
    except ValueError:
        n = 0
    steps = []
    for i in range(n):
        p = f"{side}-{i}-"
        kind = data.get(p + "kind")
        if kind not in STEP_KINDS:
            continue
        labels = [x for x in data.get(p + "labels", "").split(",") if x]
        steps.append(Step(kind=kind, text=data.get(p + "text", ""), name=data.get(p + "name", "").strip(),
                          arguments=_arguments(data.get(p + "arguments", "")) if kind == "tool_call" else None,
                          call_id=data.get(p + "call_id", "").strip(),
                          ok=data.get(p + "ok") == "on" if kind == "tool_result" else True, labels=labels))
    return steps


def _blank_step(kind: str, side_steps: list[Step], context) -> Step:
    if kind == "tool_call":
        tool = context.tools[0] if context.tools else {"name": "", "parameters": {}}
        ids = {s.call_id for s in side_steps} | {s.call_id for _, _, s in context.steps()}
        return Step(kind="tool_call", name=tool["name"], arguments=placeholder_arguments(tool.get("parameters")),
                    call_id=new_call_id(ids))
    if kind == "tool_result":
        open_call = next((s for s in reversed(side_steps) if s.kind == "tool_call"), None)
        return Step(kind="tool_result", name=open_call.name if open_call else "",
                    call_id=open_call.call_id if open_call else "")
    return Step(kind=kind)


def _apply_action(action: str, pair: core.Pair) -> list[core.PairError]:
    """Starter / add / remove / move: edits the pair in place; returns problems to show."""
    parts = action.split("-")
    try:
        if action == "starter":
            return []  # handled by the caller (it needs the chosen starter)
        if parts[0] == "add" and len(parts) == 3 and parts[1] in ("chosen", "rejected") and parts[2] in STEP_KINDS:
            steps = pair.side(parts[1])
            steps.append(_blank_step(parts[2], steps, pair.context))
        elif parts[0] in ("remove", "up", "down") and len(parts) == 3 and parts[1] in ("chosen", "rejected"):
            steps, i = pair.side(parts[1]), int(parts[2])
            if not 0 <= i < len(steps):
                return []
            if parts[0] == "remove":
                del steps[i]
            else:
                j = i - 1 if parts[0] == "up" else i + 1
                if 0 <= j < len(steps):
                    steps[i], steps[j] = steps[j], steps[i]
        elif action == "copy-chosen":
            pair.rejected = copy.deepcopy(pair.chosen)
    except ValueError:
        pass
    return []


# Presenting a pair -----------------------------------------------------------------------------


@dataclass
class StepView:
    index: int
    step: Step
    op: str
    fields: tuple
    findings: list
    arguments_text: str

    @property
    def arguments_rows(self) -> int:
        return min(12, max(3, self.arguments_text.count("\n") + 2))


def _arguments_text(step: Step) -> str:
    if step.kind != "tool_call":
        return ""
    if isinstance(step.arguments, str):
        return step.arguments
    return json.dumps(step.arguments, ensure_ascii=False, indent=1)


def step_summary(step: Step | None) -> str:
    """One line of text for a step: ``name {"arg": 1}`` for a call, ``name → result`` for a result."""
    if step is None:
        return ""
    if step.kind == "tool_call":
        args = step.arguments if isinstance(step.arguments, str) else json.dumps(step.arguments, ensure_ascii=False)
        return f"{step.name} {args}"
    if step.kind == "tool_result":
        return f"{step.name} → {step.text}" + ("" if step.ok else " (error)")
    return step.text


def present(pair: core.Pair) -> dict:
    """Both sides with diff marks and findings, the aligned diff rows, and the context turns."""
    rows = core.diff_sides(pair.chosen, pair.rejected)
    marks = {"chosen": {}, "rejected": {}}
    for r in rows:
        if r.chosen is not None:
            marks["chosen"][r.chosen] = (r.op, r.fields)
        if r.rejected is not None:
            marks["rejected"][r.rejected] = (r.op, r.fields)
    sides = {}
    for side in ("chosen", "rejected"):
        findings: dict[int, list] = {}
        for i, f in core.side_findings(pair, side):
            findings.setdefault(i, []).append(f)
        sides[side] = [StepView(i, s, *marks[side].get(i, ("same", ())), findings.get(i, []), _arguments_text(s))
                       for i, s in enumerate(pair.side(side))]
    diff = []
    for r in rows:
        a = pair.chosen[r.chosen] if r.chosen is not None else None
        b = pair.rejected[r.rejected] if r.rejected is not None else None
        diff.append({"op": r.op, "fields": r.fields, "chosen": a, "rejected": b,
                     "chosen_text": step_summary(a), "rejected_text": step_summary(b)})
    context_turns = [{"user": t.user, "steps": [
        {"step": s, "text": _arguments_text(s) if s.kind == "tool_call" else s.text} for s in t.steps]}
        for t in pair.context.turns]
    return {"sides": sides, "diff": diff, "differs": any(r.op != "same" for r in rows),
            "context_turns": context_turns, "cut": pair.cut, "system": pair.context.system}


def _category_choices(categories: dict) -> list[dict]:
    return [{"key": k, "name": c.name, "description": c.description,
             "starter": STARTERS.get(k, STARTERS["other"]).label} for k, c in categories.items()]


# The builder -----------------------------------------------------------------------------------


def fork_pair(request: HttpRequest, pk: int, turn: int, step: int) -> HttpResponse:
    """"Fork here": a new pair cut before step ``step`` of turn ``turn``."""
    trajectory = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
    permissions.require_role(request.user, trajectory.project, permissions.LEAD)
    try:
        pair, revision = services.fork_trajectory(trajectory, turn, step)
    except core.PairError as e:
        return render(request, "annotate/pairs/error.html", {
            "project": trajectory.project, "trajectory": trajectory, "error": e}, status=400)
    return _builder(request, trajectory.project, pair, row=None, trajectory=trajectory, revision=revision)


def edit_pair(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(Pair.objects.select_related("project", "trajectory"), pk=pk)
    permissions.require_role(request.user, row.project, permissions.LEAD)
    return _builder(request, row.project, row.to_core(), row=row, trajectory=row.trajectory, revision=row.revision)


def _builder(request, project: Project, pair: core.Pair, *, row, trajectory, revision) -> HttpResponse:
    categories = categories_for(project)
    errors: list[core.PairError] = []
    if request.method == "POST":
        pair.chosen = steps_from_post(request.POST, "chosen")
        pair.rejected = steps_from_post(request.POST, "rejected")
        pair.category = request.POST.get("category") or pair.category
        pair.note = request.POST.get("note", pair.note)
        pair.override = request.POST.get("override", pair.override).strip()
        action = request.POST.get("action", "save")
        if action == "starter":
            key = request.POST.get("starter") or pair.category
            try:
                pair.rejected = starter_steps(key, pair.chosen, pair.context)
                if pair.category == "other" and key in categories:
                    pair.category = key
            except StarterError as e:
                errors.append(e)
        elif action == "save":
            try:
                saved = services.save_pair(project, pair, user=request.user, row=row, trajectory=trajectory,
                                           revision=revision)
            except core.PairError:
                errors = core.pair_errors(pair, categories)
            else:
                messages.success(request, f"Saved pair {saved.pk} ({categories[saved.category].name}).")
                if request.htmx:
                    return HttpResponseClientRedirect(saved.get_absolute_url())
                return redirect(saved)
        else:
            _apply_action(action, pair)
        if action == "diff" and request.htmx:
            return render(request, "annotate/pairs/builder.html#pair-diff", {"view": present(pair)})
    ctx = {
        "project": project, "pair": pair, "row": row, "trajectory": trajectory, "view": present(pair),
        "errors": errors, "categories": _category_choices(categories),
        "category": categories.get(pair.category), "tools": pair.context.tools, "kinds": STEP_KINDS,
        "tool_names": [t["name"] for t in pair.context.tools],
        "role": permissions.role_in(request.user, project),
    }
    if request.htmx and request.method == "POST":
        # htmx swaps only 2xx answers: the errors come back in the swapped form itself.
        return render(request, "annotate/pairs/builder.html#builder", ctx)
    return render(request, "annotate/pairs/builder.html", ctx,
                  status=400 if errors and request.method == "POST" else 200)


# List, detail, review --------------------------------------------------------------------------


def pair_list(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug)
    qs = project.pairs.select_related("author", "reviewer", "trajectory").order_by("-id")
    f = {k: request.GET.get(k, "") for k in ("status", "category", "source")}
    for k, v in f.items():
        if v:
            qs = qs.filter(**{k: v})
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    categories = categories_for(project)
    return render(request, "annotate/pairs/list.html", {
        "project": project, "role": role, "page": page, "filters": f, "categories": categories,
        "statuses": Pair.STATUS_CHOICES, "sources": Pair.SOURCE_CHOICES,
        "pending": project.pair_suggestions.filter(status=PairSuggestion.PENDING).count(),
        "query": "&".join(f"{k}={v}" for k, v in f.items() if v),
    })


def pair_detail(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(Pair.objects.select_related("project", "trajectory", "author", "reviewer"), pk=pk)
    role = permissions.require_role(request.user, row.project)
    pair = row.to_core()
    categories = categories_for(row.project)
    return render(request, "annotate/pairs/detail.html", {
        "project": row.project, "role": role, "row": row, "pair": pair, "view": present(pair),
        "category": categories.get(row.category), "errors": core.pair_errors(pair, categories),
    })


def review_note(author_note: str, review: str, reviewer: str) -> str | None:
    """The pair's note after a review: the author's note kept, the reviewer's added under it (None: unchanged)."""
    review = review.strip()
    if not review:
        return None
    return f"{author_note.rstrip()}\n\nReview by {reviewer}: {review}".lstrip()


@require_POST
def review_pair(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(Pair.objects.select_related("project"), pk=pk)
    permissions.require_role(request.user, row.project, permissions.LEAD)
    status = request.POST.get("status", "")
    try:
        services.review_pair(row, status, user=request.user, note=review_note(row.note, request.POST.get("note", ""),
                                                                               request.user.get_username()))
    except core.PairError as e:
        messages.error(request, f"Pair {row.pk} cannot be {status}: {e}")
    else:
        messages.success(request, f"Pair {row.pk} is now {row.get_status_display().lower()}.")
    return redirect(row)


# Suggestions from corrections ----------------------------------------------------------------


def pair_suggestions(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
    if request.method == "POST":
        ids = ids_of(request.POST.getlist("ids"))
        action = request.POST.get("action", "")
        if not ids:
            messages.error(request, "Tick at least one suggestion first.")
        else:
            try:
                d = services.decide_suggestions(project, ids, action, user=request.user)
            except core.PairError as e:
                messages.error(request, str(e))
            else:
                if d.accepted:
                    messages.success(request, f"Accepted {len(d.accepted)} suggestion"
                                              f"{'s' if len(d.accepted) != 1 else ''} as approved pairs.")
                if d.dismissed:
                    messages.success(request, f"Dismissed {d.dismissed} suggestion{'s' if d.dismissed != 1 else ''}.")
                for e in d.errors:
                    messages.error(request, f"Suggestion {e['suggestion']} was left pending: "
                                            f"{e['field']}: {e['message']}")
        return redirect("annotate:pair-suggestions", slug=project.slug)
    services.refresh_suggestions(project)
    categories = categories_for(project)
    suggestions = list(project.pair_suggestions.filter(status=PairSuggestion.PENDING)
                       .select_related("trajectory", "corrected_by")[:200])
    items = []
    for s in suggestions:
        pair = s.to_core()
        items.append({"s": s, "view": present(pair), "category": categories.get(s.category),
                      "errors": core.pair_errors(pair, categories)})
    return render(request, "annotate/pairs/suggestions.html", {"project": project, "items": items})


# Import, export, dashboard, categories ----------------------------------------------------------


def import_pairs(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
    report = None
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            messages.error(request, "Choose a file of candidate records to import.")
        else:
            report = services.import_candidates(project, upload.read(), upload.name, user=request.user,
                                                skip_invalid=request.POST.get("skip_invalid") == "on",
                                                override=request.POST.get("override", ""))
            if report.created or report.duplicates:
                messages.success(request, f"Imported {report.created} pairs from {upload.name}"
                                          + (f"; {report.duplicates} were already here" if report.duplicates else "")
                                          + (f"; skipped {report.skipped} invalid record(s): "
                                             + "; ".join(f"line {e['line']}: {e['field']}: {e['message']}"
                                                         for e in report.errors[:5])
                                             if report.skipped else "") + ".")
                return redirect(reverse("annotate:pair-list", args=[project.slug]) + "?source=imported")
    return render(request, "annotate/pairs/import.html", {"project": project, "report": report},
                  status=400 if report is not None and report.errors else 200)


def export_pairs(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
    categories = categories_for(project)
    error = None
    if request.method == "POST":
        chosen_cats = [c for c in request.POST.getlist("categories") if c in categories]
        render_settings = {k: request.POST.get(k, "").strip() for k in ("template", "tokenizer", "max_length")}
        if render_settings["max_length"]:
            try:
                render_settings["max_length"] = int(render_settings["max_length"])
            except ValueError:
                render_settings["max_length"] = None
                error = "max length must be a whole number"
        if error is None:
            try:
                snap = services.export_pairs(project, user=request.user, render_settings=render_settings,
                                             categories=chosen_cats, name=request.POST.get("name", ""))
            except services.ExportError as e:
                error = str(e)
            else:
                verb = "is the same as" if getattr(snap, "reused", False) else "queued as"
                messages.success(request, f"The DPO export {verb} snapshot {snap.pk}.")
                try:
                    return redirect(reverse("training:snapshot-detail", args=[snap.pk]))
                except NoReverseMatch:
                    return redirect("annotate:pair-list", slug=project.slug)
    approved = project.pairs.approved().count()
    return render(request, "annotate/pairs/export.html", {
        "project": project, "categories": categories, "approved": approved, "error": error,
        "defaults": {"template": project.target_template or "qwen3", "tokenizer": project.target_tokenizer},
    }, status=400 if error else 200)


def pair_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug)
    return render(request, "annotate/pairs/dashboard.html", {"project": project, "role": role,
                                                             "d": services.dashboard(project)})


@require_POST
def add_pair_category(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = permissions.project_for(request.user, slug, permissions.LEAD)
    name = request.POST.get("name", "").strip()
    key = slugify(request.POST.get("key") or name).replace("-", "_")[:50]
    if not name or not key:
        messages.error(request, "A category needs a name.")
    elif key in categories_for(project):
        messages.error(request, f"There is already a category {key!r}.")
    else:
        PairCategory.objects.create(project=project, key=key, name=name[:100],
                                    description=request.POST.get("description", "").strip()[:300])
        messages.success(request, f"Added the category {name}.")
    return redirect("annotate:pair-dashboard", slug=project.slug)
