"""Middleware of our own."""

from django.http import JsonResponse


def healthz(get_response):
    """Answer ``/healthz`` before the host check, the https redirect and the login redirect.

    The container's health check (docker-compose.yml) asks on 127.0.0.1 over plain http, which
    ALLOWED_HOSTS and SECURE_SSL_REDIRECT would otherwise refuse or redirect. It tells only that a
    web process answers.
    """

    def middleware(request):
        if request.path_info == "/healthz":
            return JsonResponse({"ok": True})
        return get_response(request)

    return middleware
