"""Pages of a GRPO run's rollouts: the one-click preference pair (lead). The dashboard and the
rollout list are drawn on the run page by the ``grpo`` template tags (``training.templatetags.grpo``)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from annotate import permissions
from annotate.pairs.core import PairError
from training.models import TrainingJob
from training.rollouts.store import make_rollout_pair
from studio.forms import id_or_none


@require_POST
def make_pair(request: HttpRequest, pk: int) -> HttpResponse:
    """Turn two rollouts of one prompt (``chosen`` and ``rejected`` ids in the form; the higher
    reward is chosen whichever way round) into a draft preference pair, then open it."""
    job = get_object_or_404(TrainingJob.objects.select_related("project"), pk=pk)
    permissions.require_role(request.user, job.project, permissions.LEAD)
    first, second = request.POST.get("chosen", ""), request.POST.get("rejected", "")
    if id_or_none(first) is None or id_or_none(second) is None:
        messages.error(request, "rollouts: choose two rollouts of the same prompt.")
        return redirect("training:job-detail", pk=job.pk)
    try:
        pair, created = make_rollout_pair(job, int(first), int(second), user=request.user)
    except PairError as exc:
        messages.error(request, str(exc))
        return redirect("training:job-detail", pk=job.pk)
    if created:
        messages.success(request, f"Made draft pair #{pair.pk} from rollouts {first} and {second}.")
    else:
        messages.info(request, f"These rollouts already make pair #{pair.pk}.")
    return redirect("annotate:pair-detail", pk=pair.pk)
