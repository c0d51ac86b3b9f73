"""The editor's pages: one trajectory, its steps saved one at a time (htmx swaps per step), the
review workflow's moves, history and revert.

Each view reads: fetch → check permission → form → change → respond. Every editing view saves
through ``annotate.workbench`` with the version the page was drawn from (optimistic locking); a
stale save answers with a conflict view that keeps what the user typed. With htmx a view answers
with the partial it changed (plus out-of-band updates of the version, findings and status);
without JavaScript the same forms post normally and the view redirects back to the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.functional import cached_property
from django_htmx.http import reswap, retarget

from annotate import permissions
from annotate.agreement import services as overlap
from annotate.findings import Finding, validate
from annotate.forms import TransitionForm
from annotate.models import Trajectory
from annotate.trajectory import CASE_TYPES, SPLITS, Trajectory as Document
from annotate.workbench import workflow
from annotate.workbench.documents import StaleVersion, current_document, document_at, history_of
from annotate.workbench.editing import Edit, EditError
from annotate.workbench.queue import members_of, next_in_queue, next_to_review
from annotate.workbench.revisions import conflicting_values, diff_documents, rebase_edit
from annotate.workbench.saving import Conflict, conflict_for, resolve_conflict, revert, save_edit
from annotate.workbench.step_forms import (StepForm, StepPanel, argument_state, case_type_choices, check_arguments,
                                           first, read_arguments, read_step_form, schemas_for, step_panel)
from annotate.workbench.transitions import WorkflowRefused, transition

HISTORY_PAGE_SIZE = 20


@dataclass
class Editor:
    """One trajectory as the editor shows it (loaded once per request)."""

    trajectory: Trajectory
    role: str
    can_edit: bool
    doc: Document
    findings: list[Finding]
    taxonomy: list[dict]
    overrides: dict = field(default_factory=dict)  # step key -> StepPanel to show instead

    @classmethod
    def load(cls, request: HttpRequest, pk: int, *, edit: bool = False) -> "Editor":
        trajectory = get_object_or_404(Trajectory.objects.select_related("project", "assignee"), pk=pk)
        role = permissions.require_role(request.user, trajectory.project)
        overlap.require_open(request.user, trajectory)
        can_edit = permissions.can_edit_trajectory(request.user, trajectory)
        if edit and not can_edit:
            raise PermissionDenied("You may not edit this trajectory now (it is not yours, or it is in review).")
        doc = current_document(trajectory)
        return cls(trajectory, role, can_edit, doc, validate(doc), list(trajectory.project.error_labels))

    @cached_property
    def catalog(self) -> dict:
        """The project's tool catalog (only tool-call forms need it)."""
        return {t.name: t.spec() for t in self.trajectory.project.tools.all()}

    def refresh(self, doc: Document) -> None:
        self.doc = doc
        self.findings = validate(doc)

    @property
    def schemas(self) -> dict:
        return schemas_for(self.doc, self.catalog)

    def panel(self, ti: int, si: int, *, form: StepForm | None = None, mode: str = "form",
              doc: Document | None = None) -> StepPanel:
        d = doc or self.doc
        findings = self.findings if d is self.doc else validate(d)
        calls = d.turns[ti].steps[si].kind == "tool_call"
        panel = step_panel(d, ti, si, findings, taxonomy=self.taxonomy, catalog=self.catalog if calls else {},
                           form=form, mode=mode)
        panel.urls = {name: url.replace(_TURN, str(ti)).replace(_STEP, str(si)) for name, url in self.step_urls.items()}
        return panel

    @cached_property
    def step_urls(self) -> dict[str, str]:
        # Reversed once per request with placeholder numbers, then filled in per step: a page
        # has a dozen links per step and reverse() is the slowest part of drawing them.
        pk = self.trajectory.pk
        return {"save": reverse("annotate:update-step", args=[pk, _TURN, _STEP]),
                "check": reverse("annotate:check-arguments", args=[pk, _TURN, _STEP]),
                "fields": reverse("annotate:argument-fields", args=[pk, _TURN, _STEP])}

    @cached_property
    def urls(self) -> dict[str, str]:
        pk, slug = self.trajectory.pk, self.trajectory.project.slug
        return {"structure": reverse("annotate:edit-structure", args=[pk]),
                "turn": reverse("annotate:update-turn", args=[pk, _TURN]),
                "meta": reverse("annotate:update-meta", args=[pk]),
                "status": reverse("annotate:change-status", args=[pk]),
                "history": reverse("annotate:history", args=[pk]),
                "next": reverse("annotate:next-trajectory", args=[slug]),
                "assign": reverse("annotate:assign", args=[slug]),
                "queue": reverse("annotate:trajectory-list", args=[slug])}

    def turns(self, raw_key: str = "") -> list[dict]:
        out = []
        for ti, turn in enumerate(self.doc.turns):
            steps = []
            for si in range(len(turn.steps)):
                key = f"{ti}-{si}"
                steps.append(self.overrides.get(key) or self.panel(ti, si, mode="raw" if key == raw_key else "form"))
            out.append(self.turn_row(ti, turn.user, steps, turn.extra))
        return out

    def turn_row(self, ti: int, user: str, steps: list | None = None, extra: dict | None = None) -> dict:
        return {"index": ti, "number": str(ti + 1), "user": user, "steps": steps or [], "extra": extra or {},
                "url": self.urls["turn"].replace(_TURN, str(ti))}

    def findings_by_step(self) -> list[tuple[str, list[Finding]]]:
        keys = [f"{ti}-{si}" for ti, si, _ in self.doc.steps()]
        grouped: dict[str, list[Finding]] = {k: [] for k in keys}
        for f in self.findings:
            if f.turn is not None and f.step is not None:
                grouped.setdefault(f"{f.turn}-{f.step}", []).append(f)
        return list(grouped.items())

    def context(self, request: HttpRequest, **extra) -> dict:
        t = self.trajectory
        actions = workflow.allowed_actions(self.role, t.status, self.can_edit)
        is_lead = self.role in (permissions.LEAD, permissions.ADMIN)
        ctx = {
            "trajectory": t, "project": t.project, "role": self.role, "can_edit": self.can_edit, "is_lead": is_lead,
            "doc": self.doc, "findings": self.findings, "error_count": sum(f.severity == "error" for f in self.findings),
            "actions": [workflow.ACTIONS[a] for a in actions],
            "blockers": workflow.submission_blockers(self.doc, self.findings) if "submit" in actions else [],
            "case_types": case_type_choices(self.doc.meta.case_types, list(t.project.required_case_types or [])),
            "splits": SPLITS, "tags": ", ".join(self.doc.meta.tags), "kinds": STEP_KIND_CHOICES,
            "findings_by_step": self.findings_by_step(), "u": self.urls,
        }
        ctx.update(extra)
        return ctx


_PK, _TURN, _STEP = "555555555", "987654321", "123456789"  # placeholders in reversed URLs

STEP_KIND_CHOICES = [("think", "Reasoning"), ("tool_call", "Tool call"), ("tool_result", "Tool result"),
                     ("answer", "Answer")]
PAGE = "annotate/trajectory_detail.html"


def trajectory_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ed = Editor.load(request, pk)
    raw_key = request.GET.get("raw", "")
    return render(request, PAGE, _page_context(request, ed, raw_key=raw_key))


def _page_context(request: HttpRequest, ed: Editor, raw_key: str = "", **extra) -> dict:
    t = ed.trajectory
    members = members_of(t.project) if ed.role in (permissions.LEAD, permissions.ADMIN) else []
    return ed.context(request, turns=ed.turns(raw_key), members=members, revisions=recent_revisions(t),
                      transition_form=TransitionForm(), **extra)


def recent_revisions(trajectory: Trajectory) -> list:
    history = history_of(trajectory)
    return list(history.defer("document")[:5] if not isinstance(history, list) else history)


def _int(data, key: str) -> int | None:
    v = data.get(key, "")
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _saved_response(request: HttpRequest, ed: Editor, partial: str, status: int = 200, *,
                    prior_version: int | None = None, **extra) -> HttpResponse:
    """The changed region (``partial``) plus out-of-band updates of everything a save affects.

    ``prior_version``: the version the save was based on. Forms on the page drawn from exactly
    that version now stand for the new one (the only difference is the change just saved), so
    their ``base_version`` moves on; forms drawn from anything older keep theirs and will get a
    conflict view rather than overwrite what they have not seen.
    """
    ctx = ed.context(request, oob=True, prior_version=prior_version, revisions=recent_revisions(ed.trajectory),
                     **extra)
    if partial == "document":
        ctx["turns"] = ed.turns()
    body = render(request, f"{PAGE}#{partial}", ctx).content + render(request, f"{PAGE}#after_save", ctx).content
    response = HttpResponse(body, status=status)
    if partial == "document":
        # Sent from a step's or a region's form (a merge), the answer still replaces the document.
        response = reswap(retarget(response, "#document"), "outerHTML")
    return response


def update_step(request: HttpRequest, pk: int, turn: int, step: int) -> HttpResponse:
    if request.method != "POST":
        return redirect(reverse("annotate:trajectory-detail", args=[pk]) + f"#step-{turn}-{step}")
    ed = Editor.load(request, pk, edit=True)
    base_version = _int(request.POST, "base_version")
    merge_base = _int(request.POST, "merge_base")
    resolution = request.POST.get("resolution", "")
    seen_version = _int(request.POST, "seen_version")
    if base_version is None:
        return HttpResponseBadRequest("base_version is missing")
    # The form was drawn from the version it is based on: read it against that document.
    drawn_version = merge_base if resolution else base_version
    drawn = ed.doc if drawn_version == ed.trajectory.version else document_at(ed.trajectory, drawn_version)
    if drawn is None or turn >= len(drawn.turns) or step >= len(drawn.turns[turn].steps):
        raise Http404("No such step")
    data = dict(request.POST.lists())
    target = drawn.turns[turn].steps[step]
    schemas = schemas_for(drawn, ed.catalog) if target.kind == "tool_call" else {}
    form = read_step_form(target, data, schemas, drawn)
    if not form.ok:
        return _step_problem(request, ed, drawn, turn, step, form, status=422)
    edit = Edit("update_step", turn, step, form.fields)
    try:
        if resolution:
            new = resolve_conflict(ed.trajectory, edit, user=request.user, base_version=merge_base,
                                   seen_version=seen_version or 0, resolution=resolution)
        else:
            new = save_edit(ed.trajectory, edit, user=request.user, base_version=base_version,
                            loaded=(ed.trajectory.version, ed.doc))
    except StaleVersion:
        conflict = conflict_for(ed.trajectory, drawn_version)
        return _step_problem(request, ed, drawn, turn, step, form, status=409, conflict=conflict, edit=edit)
    except EditError as e:
        form.errors[e.field or "step"] = e.message
        return _step_problem(request, ed, drawn, turn, step, form, status=422)
    ed.refresh(new)
    if not request.htmx:
        messages.success(request, f"Saved step {step + 1} of turn {turn + 1} (version {ed.trajectory.version}).")
        return redirect(reverse("annotate:trajectory-detail", args=[pk]) + f"#step-{turn}-{step}")
    if resolution:
        # A merge may move the step and brings in the other person's changes: redraw the document.
        return _saved_response(request, ed, "document", notice=f"Saved version {ed.trajectory.version} "
                                                            f"({'merged' if resolution == 'merge' else 'overwritten'}).")
    return _saved_response(request, ed, "step", prior_version=base_version, s=ed.panel(turn, step), saved=True)


def _step_problem(request: HttpRequest, ed: Editor, drawn: Document, turn: int, step: int, form: StepForm, *,
                  status: int, conflict: Conflict | None = None, edit: Edit | None = None) -> HttpResponse:
    """The step form again, as typed, with its errors or the conflict (nothing typed is lost)."""
    panel = ed.panel(turn, step, form=form, doc=drawn)
    if conflict is not None:
        panel.conflict = conflict
        panel.merge_base = conflict.base_version
        if conflict.base is not None and edit is not None:
            rebased = rebase_edit(edit, conflict.base, conflict.current)
            panel.both_changed = rebased.both_changed
            panel.theirs = (conflict.current.turns[rebased.edit.turn].steps[rebased.edit.step]
                            if rebased.edit is not None else None)
            panel.gone = rebased.edit is None
            panel.versions = conflicting_values(edit, conflict.base, conflict.current)
    if request.htmx:
        ctx = ed.context(request, s=panel, conflict=conflict)
        return HttpResponse(render(request, f"{PAGE}#step", ctx).content, status=status)
    ed.overrides[panel.key] = panel
    if conflict is not None:
        return render(request, "annotate/conflict.html", ed.context(request, s=panel, conflict=conflict,
                                                                      region="step"), status=status)
    return render(request, PAGE, _page_context(request, ed), status=status)


def argument_fields_view(request: HttpRequest, pk: int, turn: int, step: int) -> HttpResponse:
    """Redraw a call's argument inputs: for another tool, or switching between form and raw JSON."""
    ed = Editor.load(request, pk, edit=True)
    mode = request.GET.get("mode", "form")
    if request.method != "POST" or not request.htmx:
        key = f"?raw={turn}-{step}" if mode == "raw" else ""
        return redirect(reverse("annotate:trajectory-detail", args=[pk]) + key + f"#step-{turn}-{step}")
    panel = _panel_or_404(request, ed, turn, step)
    data = dict(request.POST.lists())
    schemas = ed.schemas
    tool = first(data, "name", panel.step.name)
    drawn = first(data, "args_tool", tool)
    original = panel.step.arguments if drawn == panel.step.name else {}
    arguments, state, readable = read_arguments(data, drawn, schemas.get(drawn), original)
    if readable:
        state = argument_state(tool, schemas.get(tool), arguments, mode)
        check_arguments(state, schemas.get(tool), arguments)
    else:
        state.other_errors.append("Fix this before switching: the arguments cannot be read as they are.")
    panel.args = state
    return render(request, f"{PAGE}#args", ed.context(request, s=panel))


def check_arguments_view(request: HttpRequest, pk: int, turn: int, step: int) -> HttpResponse:
    """Live validation while typing: the argument errors, placed next to their fields (out of band)."""
    ed = Editor.load(request, pk, edit=True)
    if request.method != "POST":
        return HttpResponse(status=405)
    panel = _panel_or_404(request, ed, turn, step)
    data = dict(request.POST.lists())
    form = read_step_form(panel.step, data, ed.schemas)
    panel.args = form.args
    return render(request, f"{PAGE}#arg_errors", ed.context(request, s=panel))


def _panel_or_404(request: HttpRequest, ed: Editor, turn: int, step: int) -> StepPanel:
    """The tool-call step the form was drawn for: in the version the page shows (``base_version``),
    which is not the current one when someone saved meanwhile."""
    doc = ed.doc
    base = _int(request.POST, "base_version")
    if base is not None and base != ed.trajectory.version:
        doc = document_at(ed.trajectory, base) or ed.doc
    if turn >= len(doc.turns) or step >= len(doc.turns[turn].steps):
        raise Http404("No such step")
    panel = ed.panel(turn, step, doc=doc)
    if panel.step.kind != "tool_call":
        raise Http404("Not a tool call")
    return panel


# Structural edits and the turn / metadata forms ----------------------------------------------------------

STRUCTURE_OPS = ("insert_step", "duplicate_step", "delete_step", "move_step", "add_parallel_call", "add_turn",
                 "delete_turn")


def _edit_from_request(request: HttpRequest) -> Edit:
    data = request.POST.copy()
    for k, v in request.GET.items():  # no-JS buttons carry their operation in the form action's query
        data.setdefault(k, v)
    op = data.get("op", "")
    if op not in STRUCTURE_OPS:
        raise EditError("unknown operation", "op")
    fields: dict = {}
    if op == "insert_step":
        fields["kind"] = data.get("kind", "")
    if op == "move_step":
        fields["by"] = _int(data, "by")
    if op == "add_turn":
        fields["user"] = data.get("user", "")
    return Edit(op, _int(data, "turn"), _int(data, "step"), fields)


def edit_structure(request: HttpRequest, pk: int) -> HttpResponse:
    """Insert, duplicate, delete, move steps; add parallel calls; add or delete turns."""
    if request.method != "POST":
        return redirect("annotate:trajectory-detail", pk=pk)
    ed = Editor.load(request, pk, edit=True)
    try:
        edit = _edit_from_request(request)
    except EditError as e:
        return HttpResponseBadRequest(e.message)
    base_version = _int(request.POST, "base_version")
    resolution = request.POST.get("resolution", "")
    try:
        if resolution:
            new = resolve_conflict(ed.trajectory, edit, user=request.user, base_version=_int(request.POST, "merge_base"),
                                   seen_version=_int(request.POST, "seen_version") or 0, resolution="merge")
        else:
            new = save_edit(ed.trajectory, edit, user=request.user, base_version=base_version or 0,
                            loaded=(ed.trajectory.version, ed.doc))
    except StaleVersion:
        conflict = conflict_for(ed.trajectory, base_version or 0)
        ed.refresh(conflict.current)
        return _region_conflict(request, ed, "document", conflict, edit)
    except EditError as e:
        if not request.htmx:
            messages.error(request, e.message)
            return redirect("annotate:trajectory-detail", pk=pk)
        return _saved_response(request, ed, "document", status=422, problem=e.message)
    ed.refresh(new)
    anchor = f"#step-{edit.turn}-{edit.step}" if edit.turn is not None and edit.step is not None else ""
    if not request.htmx:
        messages.success(request, f"{edit.describe().capitalize()} (version {ed.trajectory.version}).")
        return redirect(reverse("annotate:trajectory-detail", args=[pk]) + anchor)
    return _saved_response(request, ed, "document", prior_version=None if resolution else base_version,
                           notice=f"{edit.describe().capitalize()}.")


def _region_conflict(request: HttpRequest, ed: Editor, region: str, conflict: Conflict, edit: Edit,
                     **extra) -> HttpResponse:
    both, versions = [], []
    if conflict.base is not None:
        both = rebase_edit(edit, conflict.base, conflict.current).both_changed
        versions = conflicting_values(edit, conflict.base, conflict.current)
    ctx = dict(conflict=conflict, pending=edit, both_changed=both, versions=versions, region=region, **extra)
    if request.htmx:
        return _saved_response(request, ed, region, status=409, **ctx)
    ctx_page = _page_context(request, ed, **ctx)
    return render(request, "annotate/conflict.html", ctx_page, status=409)


def update_turn(request: HttpRequest, pk: int, turn: int) -> HttpResponse:
    """The user message of one turn."""
    if request.method != "POST":
        return redirect(reverse("annotate:trajectory-detail", args=[pk]) + f"#turn-{turn}")
    ed = Editor.load(request, pk, edit=True)
    if turn >= len(ed.doc.turns):
        raise Http404("No such turn")
    edit = Edit("update_turn", turn, None, {"user": request.POST.get("user", "")})
    return _field_edit(request, ed, edit, region="turn_user", anchor=f"#turn-{turn}",
                       extra={"turn": ed.turn_row(turn, ed.doc.turns[turn].user,
                                                  extra=ed.doc.turns[turn].extra)})


def update_meta(request: HttpRequest, pk: int) -> HttpResponse:
    """Case types, split, tags and the system prompt."""
    if request.method != "POST":
        return redirect("annotate:trajectory-detail", pk=pk)
    ed = Editor.load(request, pk, edit=True)
    tags = [t.strip() for t in request.POST.get("tags", "").split(",") if t.strip()]
    fields = {"case_types": [c for c in request.POST.getlist("case_types") if c in CASE_TYPES],
              "split": request.POST.get("split", ed.doc.meta.split), "tags": tags,
              "system": request.POST.get("system", ed.doc.system)}
    return _field_edit(request, ed, Edit("update_meta", fields=fields), region="meta", anchor="#meta")


def _field_edit(request: HttpRequest, ed: Editor, edit: Edit, *, region: str, anchor: str,
                extra: dict | None = None) -> HttpResponse:
    extra = extra or {}
    base_version = _int(request.POST, "base_version") or 0
    resolution = request.POST.get("resolution", "")
    try:
        if resolution:
            new = resolve_conflict(ed.trajectory, edit, user=request.user, base_version=_int(request.POST, "merge_base"),
                                   seen_version=_int(request.POST, "seen_version") or 0, resolution=resolution)
        else:
            new = save_edit(ed.trajectory, edit, user=request.user, base_version=base_version,
                            loaded=(ed.trajectory.version, ed.doc))
    except StaleVersion:
        merge_base = _int(request.POST, "merge_base") if resolution else base_version
        conflict = conflict_for(ed.trajectory, merge_base or 0)
        pending = _pending_values(edit)
        return _region_conflict(request, ed, region, conflict, edit, pending_values=pending, **extra)
    except EditError as e:
        if not request.htmx:
            messages.error(request, e.message)
            return redirect(reverse("annotate:trajectory-detail", args=[ed.trajectory.pk]) + anchor)
        return _saved_response(request, ed, region, status=422, problem=e.message, pending_values=_pending_values(edit),
                               **extra)
    ed.refresh(new)
    if not request.htmx:
        messages.success(request, f"Saved (version {ed.trajectory.version}).")
        return redirect(reverse("annotate:trajectory-detail", args=[ed.trajectory.pk]) + anchor)
    if resolution:
        return _saved_response(request, ed, "document", notice=f"Saved version {ed.trajectory.version}.")
    if region == "turn_user":
        extra["turn"] = ed.turn_row(edit.turn, new.turns[edit.turn].user, extra=new.turns[edit.turn].extra)
    return _saved_response(request, ed, region, prior_version=base_version, saved=True, **extra)


def _pending_values(edit: Edit) -> dict:
    """What the user typed, for redrawing a refused metadata or turn form."""
    v = dict(edit.fields)
    if "tags" in v:
        v["tags"] = ", ".join(v["tags"])
    return v


# Workflow, history, revert --------------------------------------------------------------------------------

def change_status(request: HttpRequest, pk: int) -> HttpResponse:
    """Submit, approve, reject (with a comment) or reopen."""
    trajectory = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
    overlap.require_open(request.user, trajectory)
    permissions.require_role(request.user, trajectory.project)
    if request.method != "POST":
        return redirect(trajectory)
    form = TransitionForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest("unknown action")
    action = form.cleaned_data["action"]
    try:
        transition(trajectory, action, user=request.user, comment=form.cleaned_data["comment"],
                   base_version=form.cleaned_data["base_version"])
    except WorkflowRefused as e:
        messages.error(request, e.message + "".join(f" Turn {f.turn + 1}, step {f.step + 1}: {f.message}."
                                                    for f in e.blockers[:5] if f.turn is not None))
        return redirect(trajectory)
    except StaleVersion:
        messages.error(request, "Someone saved this trajectory after you opened it: check their change "
                                "(below and in the history), then try again.")
        return redirect(trajectory)
    done = {"submit": "Submitted for review", "approve": "Approved", "reject": "Rejected", "reopen": "Reopened"}
    messages.success(request, f"{done[action]}: {trajectory}.")
    if action in ("submit", "approve", "reject"):
        # Move on: the submitter to their next trajectory, the reviewer to the next review.
        if action == "submit":
            following = next_in_queue(request.user, trajectory.project, after=trajectory.pk)
        else:
            following = next_to_review(trajectory.project, after=trajectory.pk)
        if following is not None and following.pk != trajectory.pk:
            return redirect(following)
        return redirect("annotate:trajectory-list", slug=trajectory.project.slug)
    return redirect(trajectory)


def history(request: HttpRequest, pk: int) -> HttpResponse:
    """Every revision (who, when, what) with its per-step diff against the one before."""
    trajectory = get_object_or_404(Trajectory.objects.select_related("project", "assignee"), pk=pk)
    overlap.require_open(request.user, trajectory)
    role = permissions.require_role(request.user, trajectory.project)
    page = Paginator(history_of(trajectory), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    revisions = list(page)
    versions = {r.version for r in revisions} | {r.version - 1 for r in revisions} | {trajectory.version}
    stored = {v: (doc, st) for v, doc, st in
              trajectory.revisions.filter(version__in=versions).values_list("version", "document", "status")}
    current = stored.get(trajectory.version, (None, ""))[0]
    rows = []
    for r in revisions:
        before, before_status = stored.get(r.version - 1, (None, ""))
        changes = diff_documents(before, r.document) if before is not None else []
        moved = bool(before is not None and r.status and before_status and r.status != before_status)
        who = r.author.get_username() if r.author_id else "an import or script"
        rows.append({"revision": r, "changes": changes, "first": before is None,
                     "status_change": workflow.status_change(before_status, r.status, who) if moved else "",
                     "from_status": before_status if moved else "",
                     # transitions write "rejected: <comment>" as the summary
                     "comment": r.summary.partition(": ")[2] if moved else "",
                     # (a status change keeps the document: reverting to it would change nothing)
                     "same_as_current": current is not None and r.document == current})
    can_edit = permissions.can_edit_trajectory(request.user, trajectory)
    return render(request, "annotate/history.html", {
        "trajectory": trajectory, "project": trajectory.project, "role": role, "page": page, "rows": rows,
        "can_edit": can_edit,
        "why_not": "" if can_edit else workflow.why_not_editable(
            trajectory.status, role, trajectory.assignee.get_username() if trajectory.assignee_id else "",
            request.user.get_username()),
    })


def revert_revision(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
    overlap.require_open(request.user, trajectory)
    permissions.require_role(request.user, trajectory.project)
    if not permissions.can_edit_trajectory(request.user, trajectory):
        raise PermissionDenied("You may not edit this trajectory now.")
    if request.method != "POST":
        return redirect("annotate:history", pk=pk)
    version, base_version = _int(request.POST, "version"), _int(request.POST, "base_version")
    try:
        revert(trajectory, version or 0, user=request.user, base_version=base_version or 0)
    except StaleVersion:
        messages.error(request, "Someone saved this trajectory meanwhile; look at the history again, then revert.")
        return redirect("annotate:history", pk=pk)
    except EditError as e:
        messages.error(request, e.message)
        return redirect("annotate:history", pk=pk)
    messages.success(request, f"Reverted to version {version}; this is version {trajectory.version}.")
    return redirect(trajectory)
