"""Pages: my notifications, opening one (marks it read), marking all read. Only one's own."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from annotate.notifications.models import Notification


def notification_list(request: HttpRequest) -> HttpResponse:
    qs = Notification.objects.filter(user=request.user).select_related("project", "actor")
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "annotate/notifications/list.html", {
        "page": page, "unread": qs.unread().count()})


def open_notification(request: HttpRequest, pk: int) -> HttpResponse:
    n = get_object_or_404(Notification, pk=pk, user=request.user)
    if n.read_at is None:
        n.read_at = timezone.now()
        n.save(update_fields=["read_at"])
    if not url_has_allowed_host_and_scheme(n.url, allowed_hosts={request.get_host()}):
        return redirect("annotate:notifications")
    return redirect(n.url)


@require_POST
def mark_all_read(request: HttpRequest) -> HttpResponse:
    n = Notification.objects.filter(user=request.user).unread().update(read_at=timezone.now())
    messages.success(request, f"Marked {n} notification{'s' if n != 1 else ''} read.")
    return redirect("annotate:notifications")
