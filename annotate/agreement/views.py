"""The agreement page (leads): the project's overlap settings and the newest agreement figures."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from annotate import permissions
from annotate.agreement import services
from annotate.agreement.models import OverlapSettings
from annotate.agreement.tasks import refresh_agreement


class OverlapSettingsForm(forms.ModelForm):
    class Meta:
        model = OverlapSettings
        fields = ["annotators", "share", "threshold", "seed"]

    def clean_annotators(self):
        value = self.cleaned_data["annotators"]
        if not 1 <= value <= 10:
            raise forms.ValidationError("Between 1 (overlap off) and 10 annotators.")
        return value

    def clean_share(self):
        value = self.cleaned_data["share"]
        if not 0 <= value <= 1:
            raise forms.ValidationError("A share between 0 and 1 (0.1 is 10%).")
        return value

    def clean_threshold(self):
        value = self.cleaned_data["threshold"]
        if not -1 <= value <= 1:
            raise forms.ValidationError("A threshold between -1 and 1.")
        return value


def agreement_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug, permissions.LEAD)
    conf = services.settings_for(project)
    form = OverlapSettingsForm(instance=conf)
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "settings":
            form = OverlapSettingsForm(request.POST, instance=conf)
            if form.is_valid():
                form.instance.updated_at = timezone.now()
                form.save()
                messages.success(request, "Overlap settings saved.")
                return redirect("annotate:agreement", slug=project.slug)
        elif action == "versions":
            made = services.create_versions(project)
            messages.success(request, f"Versions made for {made} trajectories.")
            return redirect("annotate:agreement", slug=project.slug)
        elif action == "refresh":
            refresh_agreement.delay_on_commit(project.pk)
            messages.success(request, "Agreement refresh queued.")
            return redirect("annotate:agreement", slug=project.slug)
    report = services.latest_report(project)
    return render(request, "annotate/agreement.html", {
        "project": project, "role": role, "form": form, "conf": conf, "report": report,
        "figures": report.figures if report else None,
    })
