"""The judge run's page: its progress, what could not be read of its replies, and how far its
proposals agree with the humans' labels, per label (so a lead sees where it can pre-label)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from annotate import permissions
from annotate.suggestions.models import StepSuggestion
from evaluation.judge import judge_vs_humans
from evaluation.judge_models import JudgeRun


def judge_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JudgeRun.objects.select_related("project"), pk=pk)
    role = permissions.require_role(request.user, run.project)
    counts = dict.fromkeys((s for s, _ in StepSuggestion.STATUS_CHOICES), 0)
    for s in StepSuggestion.objects.filter(judge_run_id=run.pk).values_list("status", flat=True):
        counts[s] += 1
    return render(request, "evaluation/judge_detail.html", {
        "run": run, "project": run.project, "role": role, "counts": counts,
        "agreement": judge_vs_humans(run) if run.status == "succeeded" else []})
