"""Pages: a project's snapshots, the create form, a snapshot (progress, audit, override, downloads),
and the token-by-token preview of any trajectory under any template and strategy.

Each view reads: fetch → check permission → form → change → respond. Reading needs a role in the
project; creating, cancelling and overriding need the lead role. The preview tokenizes in the web
process with the ``tokenizers`` library (``training.preview.LightTokenizer``, loaded once per
process inside the view): transformers' tokenizer would import torch too.
"""

from __future__ import annotations

import time
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate import permissions
from annotate.models import Project, Trajectory
from annotate.trajectory import CASE_TYPE_NAMES, SPLITS
from jobs.rows import cancel_message
from training.audit import SEVERITY, explain
from training.export import resolve_template
from training.masks import SegmentTokenizer
from training.models import JobStatus, Snapshot
from training.paths import is_inside
from training.preview import load_preview_tokenizer, token_view
from training.render import Renderer, RenderSettings
from training.split import render_sample
from training.roots import allowed_roots, confined_tokenizer
from training.snapshots.lifecycle import create_snapshot, override_audit, request_cancel, retry_export
from training.snapshots.selection import STATUS_FILTERS, SnapshotError
from training.views import zip_stream
from studio.forms import id_or_none

# Templates offered by name in the form and the preview: TRL's tool-calling families first.
SUGGESTED_TEMPLATES = ["qwen3", "qwen3_training", "qwen2_5", "qwen2_5_training", "llama3_1", "llama3_1_training",
                       "llama3_2", "llama3_2_training", "gptoss", "gptoss_training"]
STRATEGY_HELP = {
    "auto": "one sample per conversation where the template renders history as at inference, else one per turn",
    "conversation": "one sample per trajectory, every assistant turn supervised",
    "turn": "one sample per user turn: history as rendered at inference, newest turn supervised",
}


def _snapshot(request: HttpRequest, pk: int, minimum: str = permissions.ANNOTATOR) -> tuple[Snapshot, str]:
    snap = get_object_or_404(Snapshot.objects.select_related("project", "created_by", "override_by"), pk=pk)
    return snap, permissions.require_role(request.user, snap.project, minimum)


def default_tokenizer(project: Project) -> str:
    return project.target_tokenizer or str(settings.DEMO_MODEL_DIR)


def known_tokenizers(project: Project) -> list[str]:
    """Tokenizer folders the preview may load: the project's, the demo's, and those its snapshots used."""
    seen = [default_tokenizer(project), str(settings.DEMO_MODEL_DIR)]
    for rs in project.snapshots.values_list("render_settings", flat=True)[:50]:
        if isinstance(rs, dict) and rs.get("tokenizer"):
            seen.append(rs["tokenizer"])
    return list(dict.fromkeys(seen))


def known_templates(project: Project) -> list[tuple[str, str]]:
    """(value, label) of the templates the preview may use: the project's, the suggested ones, and
    those its snapshots used (an uploaded template by its snapshot, not by its text)."""
    seen = {t: t for t in [project.target_template or "qwen3", *SUGGESTED_TEMPLATES]}
    for pk, rs in project.snapshots.order_by("-pk").values_list("pk", "render_settings")[:50]:
        template = rs.get("template") if isinstance(rs, dict) else None
        if not isinstance(template, str) or not template:
            continue
        if is_template_text(template):
            seen.setdefault(f"snapshot:{pk}", f"uploaded template of snapshot #{pk}")
        else:
            seen.setdefault(template, template)
    return list(seen.items())


def is_template_text(spec: str) -> bool:
    return "{%" in spec or "{{" in spec


def preview_template_spec(project: Project, value: str) -> str:
    """A preview choice as a template spec: ``snapshot:N`` is the template text that snapshot stored."""
    if value.startswith("snapshot:") and (pk := id_or_none(value[len("snapshot:"):])) is not None:
        snap = project.snapshots.filter(pk=pk).first()
        return (snap.render_settings or {}).get("template", "") if snap else ""
    return value


# --- list -----------------------------------------------------------------------------------------

def snapshot_list(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug)
    page = Paginator(project.snapshots.select_related("created_by", "override_by"), 50).get_page(request.GET.get("page"))
    return render(request, "training/snapshot_list.html", {"project": project, "role": role, "page": page})


# --- create ---------------------------------------------------------------------------------------

class SnapshotForm(forms.Form):
    name = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=Snapshot.KIND_CHOICES, initial="sft", widget=forms.RadioSelect)
    status = forms.ChoiceField(choices=[("approved", "Approved"), ("submitted", "Submitted or approved"),
                                        ("any", "Any status")], initial="approved")
    splits = forms.MultipleChoiceField(choices=[(s, s) for s in SPLITS], required=False,
                                       widget=forms.CheckboxSelectMultiple, help_text="none ticked: all splits")
    case_types = forms.MultipleChoiceField(choices=list(CASE_TYPE_NAMES.items()), required=False,
                                           widget=forms.CheckboxSelectMultiple, help_text="none ticked: all")
    labels = forms.MultipleChoiceField(choices=[], required=False, widget=forms.SelectMultiple(attrs={"size": 5}),
                                       help_text="only trajectories carrying one of these error labels")
    require_adjudicated = forms.BooleanField(required=False, label="Require adjudicated versions",
                                             help_text="leave out trajectories whose versions disagree and "
                                                       "no lead has adjudicated")
    template = forms.CharField(max_length=1000, widget=forms.TextInput(attrs={"list": "template-names"}), help_text="a TRL template name (qwen3, llama3_1_training …), a "
                                                          "model folder, or a .jinja file under the model roots")
    template_file = forms.FileField(required=False, label="or upload a chat template (.jinja)")
    tokenizer = forms.CharField(max_length=1000, help_text="tokenizer folder under the model roots")
    strategy = forms.ChoiceField(choices=[(k, k) for k in STRATEGY_HELP], initial="auto",
                                 help_text="; ".join(f"{k}: {v}" for k, v in STRATEGY_HELP.items()))
    reasoning_loss = forms.BooleanField(required=False, initial=True, label="Reasoning in the loss")
    error_policy = forms.ChoiceField(initial="mask", label="Steps with error labels",
                                     choices=[("mask", "mask"), ("truncate", "truncate"), ("drop", "drop")],
                                     help_text="mask: keep as context, out of the loss; truncate: cut the trajectory "
                                               "before the step; drop: leave the trajectory out")
    max_length = forms.IntegerField(min_value=16, initial=8192, help_text="tokens (what training will use)")
    # On by default: without it, TRL trains whole assistant messages (tool results in completions,
    # reasoning and error-labelled steps included), and the audit blocks the snapshot.
    tokenized = forms.BooleanField(required=False, initial=True, label="Add input_ids, labels and assistant_masks",
                                   help_text="keeps our loss masks (untrained steps, error labels, reasoning, tool "
                                             "results) in the rows; untick only for a plain messages dataset")

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["labels"].choices = [(n, n) for n in project.label_names()]

    def clean_template_file(self):
        f = self.cleaned_data.get("template_file")
        if not f:
            return None
        if f.size > 512 * 1024:
            raise forms.ValidationError("a chat template over 512 KB is not a chat template")
        try:
            text = f.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("the file is not UTF-8 text") from None
        if "{%" not in text and "{{" not in text:
            raise forms.ValidationError("this does not look like a Jinja chat template")
        return text

    def filters(self) -> dict:
        d = self.cleaned_data
        return {"status": d["status"], "splits": d["splits"], "case_types": d["case_types"], "labels": d["labels"],
                "require_adjudicated": d["require_adjudicated"]}

    def render_settings(self) -> dict:
        d = self.cleaned_data
        template = d["template"].strip()
        if d.get("template_file"):
            template = d["template_file"]  # stored as content, never as a path to read back
        return {"template": template, "tokenizer": d["tokenizer"].strip(), "strategy": d["strategy"],
                "reasoning_loss": d["reasoning_loss"], "error_policy": d["error_policy"],
                "max_length": d["max_length"], "tokenized": d["tokenized"]}

    def add_snapshot_error(self, e: SnapshotError) -> None:
        field = {"filters": None, "projects": None, "ids": None}.get(e.field, e.field)
        self.add_error(field if field in self.fields else None, e.message)


def new_snapshot(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug, permissions.LEAD)
    initial = {"template": project.target_template or "qwen3", "tokenizer": default_tokenizer(project),
               "kind": request.GET.get("kind", "sft")}
    form = SnapshotForm(request.POST or None, request.FILES or None, project=project, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            snap = create_snapshot(project, form.cleaned_data["kind"], form.filters(), form.render_settings(),
                                   request.user, name=form.cleaned_data["name"])
        except SnapshotError as e:
            form.add_snapshot_error(e)
        else:
            if snap.reused:
                messages.info(request, f"Nothing changed since {snap}: the same selection and settings give the "
                                       "same files, so here it is.")
            else:
                messages.success(request, f"Queued {snap}: {snap.item_count} items pinned.")
            return redirect("training:snapshot-detail", pk=snap.pk)
    return render(request, "training/snapshot_form.html", {
        "project": project, "role": role, "form": form, "templates": known_templates(project),
        "statuses": list(STATUS_FILTERS),
    })


# --- one snapshot ---------------------------------------------------------------------------------

def snapshot_detail(request: HttpRequest, pk: int) -> HttpResponse:
    snap, role = _snapshot(request, pk)
    context = {"snapshot": snap, "project": snap.project, "role": role, "audit": audit_view(snap.audit),
               "files": snapshot_files(snap),
               # The status the page was loaded with: flash messages about it go once it changes.
               "shown_status": request.GET.get("shown", snap.status) if request.htmx else snap.status}
    template = "training/snapshot_detail.html#live" if request.htmx else "training/snapshot_detail.html"
    return render(request, template, context)


def audit_view(audit: dict | None) -> dict | None:
    """The audit as the page shows it: counts first, findings by severity, examples with their item."""
    if not audit:
        return None
    findings = [{"code": c, "n": n, "severity": SEVERITY.get(c) or _severity_of(audit, c), **explain(c)}
                for c, n in (audit.get("findings") or {}).items()]
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order.get(f["severity"], 3), f["code"]))
    totals = audit.get("totals") or {}
    return {
        "totals": totals, "by_role": audit.get("supervised_by_role") or {},
        "by_kind": audit.get("supervised_by_kind") or {}, "strategies": audit.get("strategies") or {},
        "strategy_tokens": audit.get("strategy_tokens") or {},
        "coverage": [(CASE_TYPE_NAMES.get(c, c), n) for c, n in (audit.get("case_type_coverage") or {}).items()],
        "findings": findings, "errors": audit.get("errors", 0),
        "examples": [{**e, "where": _where(e), "title": explain(e.get("code", ""))["title"]} for e in audit.get("examples") or []],
        "warnings": audit.get("warnings", 0), "pair_categories": audit.get("pair_categories") or {},
        "truncated": totals.get("truncated_samples", 0),
    }


def _where(finding: dict) -> str:
    """The sample or item a finding concerns, with the step where it names one."""
    where = str(finding.get("sample") or finding.get("item") or finding.get("trajectory") or "")
    if finding.get("turn") is not None:
        where += f" turn {finding['turn'] + 1}" + (f", step {finding['step'] + 1}" if finding.get("step") is not None else "")
    return where.strip()


def _severity_of(audit: dict, code: str) -> str:
    return next((e.get("severity", "error") for e in audit.get("examples", []) if e.get("code") == code), "error")


# Downloads: name in the URL → (path inside the snapshot folder, is a folder to zip).
FILES = {
    "train.jsonl": ("train.jsonl", False), "eval.jsonl": ("eval.jsonl", False), "test.jsonl": ("test.jsonl", False),
    "audit.json": ("audit.json", False), "snapshot.json": ("snapshot.json", False), "README.md": ("README.md", False),
    "chat_template.jinja": ("chat_template.jinja", False), "hf.zip": ("hf", True), "parquet.zip": ("parquet", True),
}


def snapshot_files(snap: Snapshot) -> list[str]:
    if snap.status != JobStatus.SUCCEEDED or not snap.out_dir:
        return []
    root = Path(snap.out_dir)
    return [name for name, (rel, _) in FILES.items() if (root / rel).exists()]


def download_snapshot_file(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    snap, _ = _snapshot(request, pk)
    if name not in FILES or name not in snapshot_files(snap):
        raise Http404("No such file")
    rel, is_dir = FILES[name]
    path = Path(snap.out_dir) / rel
    if not is_inside(str(path), [snap.out_dir]):  # a symlink out of the snapshot folder
        raise Http404("No such file")
    if is_dir:
        root = f"snapshot-{snap.pk}-{rel}"
        response = StreamingHttpResponse(zip_stream(path, root), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{root}.zip"'
        return response
    inline = request.GET.get("download") != "1"
    return FileResponse(open(path, "rb"), as_attachment=not inline, filename=f"snapshot-{snap.pk}-{name}",
                        content_type="text/plain; charset=utf-8" if inline else None)


@require_POST
def override_snapshot(request: HttpRequest, pk: int) -> HttpResponse:
    snap, _ = _snapshot(request, pk, permissions.LEAD)
    try:
        override_audit(snap, request.user, request.POST.get("reason", ""))
    except SnapshotError as e:
        messages.error(request, e.message)
    else:
        messages.success(request, f"You accepted the {snap.audit_errors} audit errors of {snap}; it can be trained on.")
    return redirect("training:snapshot-detail", pk=snap.pk)


@require_POST
def cancel_snapshot(request: HttpRequest, pk: int) -> HttpResponse:
    snap, _ = _snapshot(request, pk, permissions.LEAD)
    outcome = request_cancel(snap, request.user)
    messages.info(request, cancel_message(snap, outcome))
    return redirect("training:snapshot-detail", pk=snap.pk)


@require_POST
def retry_snapshot(request: HttpRequest, pk: int) -> HttpResponse:
    snap, _ = _snapshot(request, pk, permissions.LEAD)
    try:
        retry_export(snap, request.user)
    except SnapshotError as e:
        messages.error(request, e.message)
    else:
        messages.info(request, f"{snap} is queued again; its export starts over.")
    return redirect("training:snapshot-detail", pk=snap.pk)


# --- preview --------------------------------------------------------------------------------------

class PreviewForm(forms.Form):
    template = forms.ChoiceField(choices=[])
    tokenizer = forms.ChoiceField(choices=[])
    strategy = forms.ChoiceField(choices=[(k, k) for k in STRATEGY_HELP], initial="auto")
    reasoning_loss = forms.ChoiceField(choices=[("1", "in the loss"), ("0", "context only")], initial="1",
                                       label="Reasoning")
    error_policy = forms.ChoiceField(choices=[("mask", "mask"), ("truncate", "truncate"), ("drop", "drop")],
                                     initial="mask", label="Steps with error labels")

    def __init__(self, data, *, project: Project):
        super().__init__(data)
        self.fields["template"].choices = known_templates(project)
        self.fields["tokenizer"].choices = [(t, _short_path(t)) for t in known_tokenizers(project)]


def _short_path(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def preview_trajectory(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
    role = permissions.require_role(request.user, trajectory.project)
    project = trajectory.project
    data = {"template": project.target_template or "qwen3", "tokenizer": default_tokenizer(project),
            "strategy": "auto", "reasoning_loss": "1", "error_policy": "mask"}
    data.update({k: v for k, v in request.GET.items() if k in data})
    form = PreviewForm(data, project=project)
    result, error = None, ""
    if form.is_valid():
        try:
            params = {**form.cleaned_data,
                      "template": preview_template_spec(project, form.cleaned_data["template"])}
            result = render_preview(trajectory, params)
        except Exception as e:  # a template or tokenizer that cannot be used: say so on the page
            error = f"{type(e).__name__}: {e}"
    else:
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    context = {"trajectory": trajectory, "project": project, "role": role, "form": form, "result": result,
               "error": error, "strategy_help": STRATEGY_HELP}
    template = "training/snapshot_preview.html#preview" if request.htmx else "training/snapshot_preview.html"
    return render(request, template, context)


_SEGMENTS: dict = {}


def render_preview(trajectory: Trajectory, params: dict) -> dict:
    """Render the trajectory's current document through the chosen template, tokens and all."""
    started = time.perf_counter()
    template = resolve_template(params["template"], roots=allowed_roots())
    tokenizer = load_preview_tokenizer(confined_tokenizer(params["tokenizer"]),
                                       str(Path(settings.DATA_DIR) / "tokenizers"))
    loaded = time.perf_counter()
    settings_ = RenderSettings(strategy=params["strategy"], reasoning_loss=params["reasoning_loss"] == "1",
                               error_policy=params["error_policy"])
    out = render_sample(trajectory.to_canonical(), template, tokenizer, settings_, trajectory_id=f"t{trajectory.pk}")
    segments = _SEGMENTS.get(id(tokenizer))
    if segments is None or segments.tokenizer is not tokenizer:
        segments = _SEGMENTS[id(tokenizer)] = SegmentTokenizer(tokenizer)
    renderer = Renderer.for_tokenizer(template, tokenizer)
    samples = []
    for s in out["samples"]:
        view = token_view(s, tokenizer, renderer, segments)
        samples.append({"id": s["id"], "strategy": s["strategy"], "turn": s.get("turn"), "view": view,
                        "findings": s["audit"]["findings"], "mask_method": s["audit"]["mask_method"]})
    return {"template": template, "strategy": out["strategy"], "dropped": out["dropped"], "samples": samples,
            "load_ms": round((loaded - started) * 1000), "render_ms": round((time.perf_counter() - loaded) * 1000)}
