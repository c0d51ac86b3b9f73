"""Error pages for 400 / 403 / 404 / 500: the reason the server knows, a link back and the nav.

Django's own handlers render these templates without the request (no nav, no user) and hide the
reason of a 400 / 403. These keep the request where they can. The 500 page must never fail
itself: it tries the full page once and falls back to the bare template (no request context, no
database) when that raises; it shows no exception text, whatever DEBUG says.
"""

from __future__ import annotations

import logging
import re

from django.core.exceptions import BadRequest, DisallowedHost, PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.urls import Resolver404
from django.utils.http import url_has_allowed_host_and_scheme

log = logging.getLogger(__name__)

GENERIC_404 = "There is no page at this address. The link may be old, or the item was removed."
GENERIC_403 = "Your account may not do this here."
GENERIC_400 = "The request could not be read (a form field or the address is malformed)."


def reason_of(exception, generic: str) -> str:
    """The message the code raised with (``PermissionDenied("This needs the lead role in X.")``),
    or ``generic`` where it raised none or a resolver's internal detail."""
    if exception is None or isinstance(exception, Resolver404):
        return generic
    args = getattr(exception, "args", ())
    message = (args[0] if args and isinstance(args[0], str) else "").strip()
    # get_object_or_404's "No EvalRun matches the given query." in words a user reads.
    missing = re.fullmatch(r"No (\w+) matches the given query\.", message)
    if missing:
        thing = re.sub(r"(?<!^)(?=[A-Z])", " ", missing[1]).lower()
        return f"There is no {thing} at this address: it may have been deleted, or the link is wrong."
    return message or generic


def _page(request: HttpRequest, template: str, status: int, reason: str, heading: str = "") -> HttpResponse:
    context = {"reason": reason, "back": _back(request), "heading": heading}
    try:
        return HttpResponse(loader.render_to_string(template, context, request=request), status=status)
    except Exception:  # a broken session or database must not turn a 4xx into a 500
        log.exception("the %s page failed with the request context; serving it without", status)
        return HttpResponse(loader.render_to_string(template, context), status=status)


def _back(request: HttpRequest) -> str:
    """Where "Go back" leads: the page of ours that linked here, else the projects list."""
    referer = request.META.get("HTTP_REFERER", "")
    try:
        host = request.get_host()
    except DisallowedHost:
        return "/"
    if referer and url_has_allowed_host_and_scheme(referer, allowed_hosts={host}) \
            and referer != request.build_absolute_uri():
        return referer
    return "/"


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    # A SuspiciousOperation's message names settings and headers: only our own BadRequest speaks.
    if not isinstance(exception, BadRequest):
        exception = None
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": reason_of(exception, GENERIC_400)}, status=400)
    return _page(request, "400.html", 400, reason_of(exception, GENERIC_400))


def permission_denied(request: HttpRequest, exception: PermissionDenied | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": reason_of(exception, GENERIC_403)}, status=403)
    return _page(request, "403.html", 403, reason_of(exception, GENERIC_403))


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """A 404 under /api/ is JSON, as the schema documents (a URL no route matches: an id that is not a
    number, a slug with other characters); pages get the friendly page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found: no API route or row matches this URL."}, status=404)
    return _page(request, "404.html", 404, reason_of(exception, GENERIC_404))


def server_error(request: HttpRequest) -> HttpResponse:
    """No exception detail ever reaches the page; the log has it (Django logs it before calling this)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error: it has been logged."}, status=500)
    template = loader.get_template("500.html")
    try:
        return HttpResponse(template.render({"back": "/"}, request), status=500)
    except Exception:  # the failure may be in the request context itself (the session, the database)
        log.exception("the 500 page failed with the request context; serving it without")
        return HttpResponse(template.render({"back": "/"}), status=500)


CSRF_REASON = ("This form had expired or came from another tab that logged out (its security token did not "
               "match). Go back, reload the page and send it again; what you typed may need to be typed again.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A refused form post (CSRF_FAILURE_VIEW): the friendly 403 with what to do, not Django's bare page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"CSRF check failed: {reason}"}, status=403)
    return _page(request, "403.html", 403, CSRF_REASON, heading="This form has expired")
