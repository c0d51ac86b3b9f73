"""The GRPO launch page: the form, every problem at once, and the exact GRPOConfig it will run."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from annotate import permissions
from annotate.models import Project
from rl.forms import GRPOLaunchForm
from rl.launch import launch_grpo, preview
from training.jobs import LaunchError, remember_launch


def launch_grpo_job(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_object_or_404(Project, slug=slug)
    role = permissions.require_role(request.user, project, permissions.LEAD)
    if request.method == "POST":
        form = GRPOLaunchForm(request.POST, project=project)
    else:
        form = GRPOLaunchForm(initial=GRPOLaunchForm.initial_for(project), project=project)
    shown = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if request.POST.get("action") == "preview":
            shown = preview(data["snapshot"], data["base_model"], form.grpo_settings)
        else:
            try:
                job = launch_grpo(project=project, snapshot=data["snapshot"], base_model=data["base_model"],
                                  grpo_settings=form.grpo_settings, user=request.user, name=data["name"])
            except LaunchError as exc:  # the snapshot changed between the form check and now
                for name, message in exc.errors.items():
                    form.add_error(name if name in form.fields else None, message)
            else:
                remember_launch(project, "grpo", form.remembered_values(), request.user)
                messages.success(request, f"Queued {job}. It starts when a worker on the train queue is free.")
                return redirect("training:job-detail", pk=job.pk)
    return render(request, "rl/launch.html", {
        "project": project, "role": role, "form": form, "preview": shown,
        "has_snapshots": form.fields["snapshot"].queryset.exists()})
