"""The judge run's page: its progress, what could not be read of its replies, and how far its
proposals agree with the humans' labels, per label (so a lead sees where it can pre-label)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from annotate import permissions
from annotate.suggestions.models import StepSuggestion
from evaluation.generate import GenerationSettings
from evaluation.judge import judge_vs_humans, launch_judge
from evaluation.judge_forms import JudgeLaunchForm
from evaluation.judge_models import JudgeRun
from training.jobs import LaunchError


def judge_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JudgeRun.objects.select_related("project"), pk=pk)
    role = permissions.require_role(request.user, run.project)
    counts = dict.fromkeys((s for s, _ in StepSuggestion.STATUS_CHOICES), 0)
    for s in StepSuggestion.objects.filter(judge_run_id=run.pk).values_list("status", flat=True):
        counts[s] += 1
    return render(request, "evaluation/judge_detail.html", {
        "run": run, "project": run.project, "role": role, "counts": counts,
        "agreement": judge_vs_humans(run) if run.status == "succeeded" else []})


def judge_runs(request: HttpRequest, slug: str) -> HttpResponse:
    """The project's judge runs, and (leads) the form that launches one."""
    project, role = permissions.project_for(request.user, slug)
    is_lead = role in (permissions.LEAD, permissions.ADMIN)
    form = None
    if is_lead:
        form = JudgeLaunchForm(request.POST or None, project=project)
    if request.method == "POST":
        if not is_lead:
            permissions.project_for(request.user, slug, permissions.LEAD)  # 403
        if form.is_valid():
            d = form.cleaned_data
            try:
                run = launch_judge(project=project, trajectory_ids=form.trajectory_ids(), user=request.user,
                                   model_source=d["model_source"], model_path=d["model_path"] or "",
                                   training_job=d["training_job"], endpoint_url=d["endpoint_url"] or "",
                                   endpoint_model=d["endpoint_model"] or "", name=d["name"],
                                   gen=GenerationSettings(max_new_tokens=d["max_new_tokens"]))
            except LaunchError as exc:
                for name, message in exc.errors.items():
                    form.add_error(name if name in form.fields else None, message)
            else:
                messages.success(request, f"Queued {run}. It starts when a worker on the eval queue is free.")
                return redirect("evaluation:judge-detail", pk=run.pk)
    return render(request, "evaluation/judge_runs.html", {
        "project": project, "role": role, "form": form, "runs": project.judge_runs.all()[:100]})
