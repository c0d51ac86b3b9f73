"""The adjudication pages (lead): the queue of trajectories whose versions differ, and one
trajectory's versions side by side, step by step, differences highlighted, a choice per step."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from annotate import permissions
from annotate.adjudication import service
from annotate.adjudication.compare import COMPARED, AdjudicationError
from annotate.models import Trajectory
from studio.forms import id_or_none

QUEUE_LIMIT = 200


def adjudication_queue(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = permissions.project_for(request.user, slug, permissions.LEAD)
    ids = service.unadjudicated_ids(project.trajectories.all())[:QUEUE_LIMIT]
    items = list(Trajectory.objects.filter(pk__in=ids).order_by("pk"))
    return render(request, "annotate/adjudication/queue.html", {"project": project, "role": role, "items": items})


def _choice_of(value: str) -> dict | None:
    if value == "drop":
        return {"drop": True}
    kind, _, who = value.partition(":")
    if kind in ("pick", "merge") and who:
        return {"pick": who, "merge_labels": kind == "merge"}
    return None


def _args(step) -> str:
    return json.dumps(step.arguments, ensure_ascii=False, sort_keys=True) if step is not None else ""


def _options(row, names: list[str], chosen: str | None) -> list[dict]:
    """The radio buttons of a step where the versions differ."""
    if not row.differs:
        return []
    have = [n for n in names if row.versions[n] is not None]
    opts = [{"value": f"pick:{n}", "text": f"{n}'s"} for n in have]
    if "labels" in row.fields or "missing" in row.fields:
        opts += [{"value": f"merge:{n}", "text": f"{n}'s + all labels"} for n in have]
    if "missing" in row.fields:
        opts.append({"value": "drop", "text": "drop the step"})
    for o in opts:
        o["checked"] = o["value"] == chosen
    return opts


def adjudicate_trajectory(request: HttpRequest, pk: int) -> HttpResponse:
    trajectory = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
    role = permissions.require_role(request.user, trajectory.project, permissions.LEAD)
    error = None
    chosen: dict[str, str] = {}
    if request.method == "POST":
        choices = []
        for key, value in request.POST.items():
            if key.startswith("choice-") and (c := _choice_of(value)):
                turn, _, step = key[len("choice-"):].partition("-")
                if id_or_none(turn) is not None and id_or_none(step) is not None:
                    choices.append({"turn": int(turn), "step": int(step), **c})
                    chosen[key] = value
        try:
            base = int(request.POST.get("base_version", ""))
        except ValueError:
            base = -1
        try:
            service.decide(trajectory, choices, user=request.user, base_version=base)
        except AdjudicationError as exc:
            error = exc
        else:
            messages.success(request, "Adjudicated: this is now the trajectory's version.")
            return redirect("annotate:adjudicate", pk=trajectory.pk)
    versions, rows = service.comparison(trajectory)
    names = list(versions)
    table = [{"row": r, "key": f"choice-{r.turn}-{r.step}", "id": f"step-{r.turn}-{r.step}",
              "cells": [{"name": n, "step": r.versions[n], "differs": r.fields, "args": _args(r.versions[n])}
                        for n in names],
              "options": _options(r, names, chosen.get(f"choice-{r.turn}-{r.step}"))}
             for r in rows]
    return render(request, "annotate/adjudication/compare.html", {
        "project": trajectory.project, "trajectory": trajectory, "role": role, "names": names,
        "sources": [{"name": n, "ref": ref} for n, (ref, _) in versions.items()], "table": table, "chosen": chosen,
        "error": error, "compared": COMPARED, "latest": service.latest(trajectory)},
        status=400 if error else 200)
