"""Pages: launch a run, watch it (charts polled by htmx), cancel, resume, download; the runs page.

Each view reads: fetch → check permission → form → change → respond. Reading runs needs a role
in the project; launching, cancelling and resuming need the lead role.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from annotate import permissions
from annotate.models import Project
from jobs.rows import cancel_message, request_cancel
from studio.charts import line_chart
from training import distributed, runner
from training.forms import LaunchForm
from training.jobs import (LaunchError, ResumeError, launch_plan, launch_training, preview_run_config,
                           remember_launch, resume_point, resume_training)
from training.models import JobStatus, TrainingDefaults, TrainingJob
from training.paths import is_inside
from studio.forms import id_or_none, ids_of

QUEUE_HINT_AFTER = 30  # seconds queued before the job page asks whether a worker is running

# Charts of the job page: (title, [(metric key, series label)]). DPO adds its reward charts.
CHARTS = [
    ("Loss", [("loss", "train"), ("eval_loss", "eval")]),
    ("Learning rate", [("learning_rate", "lr")]),
    ("Grad norm", [("grad_norm", "grad norm")]),
    ("Tokens / s", [("tokens_per_second", "tokens/s")]),
]
DPO_CHARTS = [
    ("Reward margin", [("rewards/margins", "train"), ("eval_rewards/margins", "eval")]),
    ("Reward accuracy", [("rewards/accuracies", "train"), ("eval_rewards/accuracies", "eval")]),
]
def thin(points: list, most: int = 400) -> list:
    """At most about ``most`` evenly spaced points, always keeping the last (long runs log thousands)."""
    if len(points) <= most:
        return points
    every = math.ceil(len(points) / most)
    return points[::every] + ([points[-1]] if (len(points) - 1) % every else [])


def job_charts(job: TrainingJob, points: list[tuple[int, dict]]) -> list[dict]:
    """The job page's charts from its metric points ``[(step, values), ...]``."""
    out = []
    for title, keys in CHARTS + (DPO_CHARTS if job.kind == "dpo" else []):
        series = [(label, thin([(step, v[key]) for step, v in points if key in v])) for key, label in keys]
        n = sum(len(p) for _, p in series)
        out.append({"title": title, "keys": [k for k, _ in keys], "points": n,
                    "svg": line_chart(title, series) if n else ""})
    return out


def live_version(job: TrainingJob, n_points: int) -> str:
    """Changes whenever the live region would: a poll that has nothing new gets 204 (htmx keeps the page)."""
    parts = (job.status, job.current_step, job.total_steps, n_points, job.message, len(job.log_tail),
             job.cancel_requested, len(job.error), job.summary.get("rollouts_stored"))
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:12]


def _project(request: HttpRequest, slug: str, minimum: str = permissions.ANNOTATOR) -> tuple[Project, str]:
    project = get_object_or_404(Project, slug=slug)
    return project, permissions.require_role(request.user, project, minimum)


def _job(request: HttpRequest, pk: int, minimum: str = permissions.ANNOTATOR) -> tuple[TrainingJob, str]:
    job = get_object_or_404(TrainingJob.objects.select_related("project", "snapshot", "created_by"), pk=pk)
    return job, permissions.require_role(request.user, job.project, minimum)


def run_list(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = _project(request, slug)
    jobs = project.training_jobs.select_related("snapshot", "created_by")
    f = {k: request.GET.get(k, "").strip() for k in ("status", "kind", "snapshot", "q")}
    if f["status"]:
        jobs = jobs.filter(status=f["status"])
    if f["kind"]:
        jobs = jobs.filter(kind=f["kind"])
    if (snapshot_id := id_or_none(f["snapshot"])) is not None:
        jobs = jobs.filter(snapshot_id=snapshot_id)
    if f["q"]:
        jobs = jobs.filter(name__icontains=f["q"]) | jobs.filter(base_model__icontains=f["q"])
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    compare_ids = ids_of(request.GET.getlist("compare"))
    compared = list(project.training_jobs.filter(pk__in=compare_ids).order_by("pk"))
    overlay = None
    if compared:
        series = []
        for job in compared:
            pts = [(s, v["loss"]) for s, v in job.metrics.values_list("step", "values") if "loss" in v]
            series.append((f"#{job.pk} {job.name}", pts))
        overlay = line_chart("Training loss", series, width=1100, height=420, legend=True)
    return render(request, "training/run_list.html", {
        "project": project, "role": role, "page": page, "filters": f, "compared": compared,
        "query": urlencode({k: v for k, v in f.items() if v}),
        "compare_ids": compare_ids, "overlay": overlay, "statuses": JobStatus.choices,
        "kinds": TrainingJob.KIND_CHOICES, "snapshots": project.snapshots.filter(kind__in=("sft", "dpo")),
    })


def launch_job(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = _project(request, slug, permissions.LEAD)
    kind = request.GET.get("kind") or request.POST.get("kind") or "sft"
    if kind not in runner.KINDS:
        raise Http404("No such kind of run")
    # The form starts from the project's last launch of this kind, and says so (with a way back to
    # the defaults): values brought back silently surprise whoever launches next.
    from_defaults = request.GET.get("defaults") == "1"
    last = None if from_defaults else (TrainingDefaults.objects.select_related("updated_by")
                                      .filter(project=project, kind=kind).first())
    if request.method == "POST":
        form = LaunchForm(request.POST, project=project, kind=kind)
    else:
        form = LaunchForm(initial=LaunchForm.initial_for(project, kind, remembered=not from_defaults),
                          project=project, kind=kind)
    preview = None
    if request.method == "POST" and form.is_valid():
        if request.POST.get("action") == "preview":
            preview = launch_preview(project, form)
        else:
            try:
                job = launch_training(project=project, snapshot=form.cleaned_data["snapshot"], kind=kind,
                                      base_model=form.cleaned_data["base_model"], train_settings=form.train_settings,
                                      user=request.user, name=form.cleaned_data["name"])
            except LaunchError as exc:  # the snapshot changed between the form check and now
                for name, message in exc.errors.items():
                    form.add_error(name if name in form.fields else None, message)
            else:
                remember_launch(project, kind, form.remembered_values(), request.user)
                messages.success(request, f"Queued {job}. It starts when a worker on the train queue is free.")
                return redirect("training:job-detail", pk=job.pk)
    return render(request, "training/job_form.html", {
        "project": project, "role": role, "form": form, "kind": kind, "preview": preview,
        "has_snapshots": form.fields["snapshot"].queryset.exists(), "last": last, "from_defaults": from_defaults,
    })


def launch_preview(project: Project, form: LaunchForm) -> dict:
    """The exact job file, TRL configuration and command the launch would run."""
    cfg = preview_run_config(form.cleaned_data["snapshot"], form.kind, form.cleaned_data["base_model"],
                             form.train_settings)
    s = cfg.settings
    plan = launch_plan(cfg, python="python")
    device = "cpu" if s.device == "auto" else s.device
    cuda_changes = ""
    if s.device == "auto":  # the worker decides: show the CPU config and what CUDA changes
        cpu, cuda = runner.trl_kwargs(cfg, "cpu"), runner.trl_kwargs(cfg, "cuda")
        cuda_changes = ", ".join(f"{k}={cuda[k]!r}" if k in cuda else f"{k} at TRL's default"
                                 for k in sorted(set(cpu) | set(cuda)) if cpu.get(k, "∅") != cuda.get(k, "∅"))
    return {
        "command": plan.command_text,
        "accelerate_config": distributed.config_text(plan.accelerate_config) if plan.accelerate_config else "",
        "queue": distributed.train_queue(s.to_dict()),
        "job_json": json.dumps(cfg.to_dict(), indent=2, sort_keys=True),
        "config": runner.trl_call_text(cfg, device),
        "auto": s.device == "auto",
        "cuda_changes": cuda_changes,
    }


def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job, role = _job(request, pk)
    version = live_version(job, job.metrics.count())
    if request.htmx and request.GET.get("v") == version:
        return HttpResponse(status=204)  # nothing new since the last poll: htmx leaves the page as it is
    points = list(job.metrics.values_list("step", "values"))
    latest: dict = {}
    for _, values in points:
        latest.update(values)
    waiting = (timezone.now() - job.created_at).total_seconds()
    charts = job_charts(job, points)
    context = {"job": job, "project": job.project, "role": role, "charts": charts, "has_points": bool(points),
               "chart_titles": [c["title"] for c in charts],
               # The status the page was loaded with: flash messages about it go once it changes.
               "shown_status": request.GET.get("shown", job.status) if request.htmx else job.status,
               "latest": latest, "artifacts": artifacts(job), "version": version,
               "waiting_long": job.status == JobStatus.QUEUED and waiting > QUEUE_HINT_AFTER,
               "can_resume": role != permissions.ANNOTATOR and job.status in (JobStatus.FAILED, JobStatus.CANCELLED)
               and resume_point(job) is not None}
    template = "training/job_detail.html#live" if request.htmx else "training/job_detail.html"
    return render(request, template, context)


@require_POST
def cancel_job(request: HttpRequest, pk: int) -> HttpResponse:
    job, _ = _job(request, pk, permissions.LEAD)
    outcome = request_cancel(job)
    messages.info(request, cancel_message(job, outcome))
    return redirect("training:job-detail", pk=job.pk)


@require_POST
def resume_job(request: HttpRequest, pk: int) -> HttpResponse:
    job, _ = _job(request, pk, permissions.LEAD)
    try:
        new = resume_training(job, request.user)
    except ResumeError as exc:
        messages.error(request, str(exc))
        return redirect("training:job-detail", pk=job.pk)
    messages.success(request, f"Queued {new}.")
    return redirect("training:job-detail", pk=new.pk)


# Downloads ------------------------------------------------------------------------------------

FILES = {  # name in the URL → path inside the run folder, and whether it is a folder (zipped)
    "model": (runner.FINAL_DIR, True),
    "card": (f"{runner.FINAL_DIR}/{runner.CARD_FILE}", False),
    "metrics": (runner.METRICS_FILE, False),
    "log": ("train.log", False),
    "config": ("job.json", False),
}


def artifacts(job: TrainingJob) -> list[dict]:
    """The downloadable files of a run that exist now (checkpoints included)."""
    run_dir = Path(job.output_dir) if job.output_dir else None
    if run_dir is None or not run_dir.is_dir():
        return []
    labels = {"model": "Final LoRA adapter (zip)" if job.config.get("method") == "lora" else "Final model (zip)",
              "card": "Model card (README.md)", "metrics": "Metrics (JSON Lines)", "log": "Training log",
              "config": "Job file (job.json)"}
    # While it runs, the files keep pace with the step counter the page shows: no checkpoint past it.
    active = job.is_active
    out = [{"name": n, "label": labels[n]} for n, (rel, _) in FILES.items() if (run_dir / rel).exists()]
    for ckpt in sorted((run_dir / runner.CHECKPOINTS_DIR).glob("checkpoint-*"), key=runner.checkpoint_step):
        if active and runner.checkpoint_step(ckpt) > job.current_step:
            continue
        out.append({"name": ckpt.name, "label": f"Checkpoint at step {runner.checkpoint_step(ckpt)} (zip)"})
    return out


class _Chunks(io.RawIOBase):
    """A write-only sink a streaming ZipFile writes into; the response drains it."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.chunks.append(bytes(b))
        return len(b)

    def drain(self):
        out, self.chunks = self.chunks, []
        return out


def zip_stream(folder: Path, root: str):
    """Yield a zip of ``folder`` chunk by chunk (stored, not compressed: weights don't compress)."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        # A symlink that leads out of the folder is left out: the zip holds the folder's own files.
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and is_inside(str(p), [folder])):
            info = zipfile.ZipInfo.from_file(path, f"{root}/{path.relative_to(folder)}")
            with open(path, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    yield from sink.drain()
            yield from sink.drain()
    yield from sink.drain()


def download_artifact(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    job, _ = _job(request, pk)
    run_dir = Path(job.output_dir)
    if name in FILES:
        rel, is_dir = FILES[name]
    elif name.startswith("checkpoint-") and name[len("checkpoint-"):].isdigit():
        rel, is_dir = f"{runner.CHECKPOINTS_DIR}/{name}", True
    else:
        raise Http404("No such file")
    path = run_dir / rel
    if not path.exists() or not is_inside(str(path), [run_dir]):
        raise Http404("This run has no such file (yet)")
    if is_dir:
        root = f"run-{job.pk}-{name}"
        response = StreamingHttpResponse(zip_stream(path, root), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{root}.zip"'
        return response
    inline = name in ("card", "log", "config", "metrics") and request.GET.get("download") != "1"
    filename = f"run-{job.pk}-{path.name}"
    return FileResponse(open(path, "rb"), as_attachment=not inline, filename=filename,
                        content_type="text/plain; charset=utf-8" if inline else None)
