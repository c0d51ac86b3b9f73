"""The editor's suggestions box: a judge's pending proposals for this trajectory, each with
Accept and Dismiss. The editor includes ``annotate/suggestions/_box.html``, which loads this
view's fragment; accepting reloads the editor (the document changed), dismissing swaps the box."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from annotate import permissions
from annotate.models import Trajectory
from annotate.suggestions import decide

BOX = "annotate/suggestions/_box.html"


def _trajectory(request: HttpRequest, pk: int, *, edit: bool = False) -> Trajectory:
    trajectory = get_object_or_404(Trajectory.objects.select_related("project"), pk=pk)
    permissions.require_role(request.user, trajectory.project)
    if edit and not permissions.can_edit_trajectory(request.user, trajectory):
        raise PermissionDenied("You may not edit this trajectory now (it is not yours, or it is in review).")
    return trajectory


def _box(request: HttpRequest, trajectory: Trajectory, error: str = "") -> HttpResponse:
    return render(request, BOX, {"trajectory": trajectory, "suggestions": decide.pending_for(trajectory.pk),
                                 "can_edit": permissions.can_edit_trajectory(request.user, trajectory),
                                 "error": error})


def suggestion_box(request: HttpRequest, pk: int) -> HttpResponse:
    return _box(request, _trajectory(request, pk))


@require_POST
def decide_suggestion(request: HttpRequest, pk: int, sid: int, verb: str) -> HttpResponse:
    action = {"accept": decide.accept, "dismiss": decide.dismiss}.get(verb)
    if action is None:
        raise Http404("no such decision")
    trajectory = _trajectory(request, pk, edit=True)
    try:
        action(sid, trajectory.pk, user=request.user)
    except decide.SuggestionError as exc:
        if request.htmx:
            return _box(request, trajectory, error=exc.message)
        messages.error(request, exc.message)
        return redirect("annotate:trajectory-detail", pk=trajectory.pk)
    if request.htmx and verb == "dismiss":
        return _box(request, trajectory)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"  # the document has a new revision: redraw the editor
        return response
    return redirect("annotate:trajectory-detail", pk=trajectory.pk)
