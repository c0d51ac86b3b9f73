"""The real URLs plus one page that fails, for the 500 page's browser test."""

from django.urls import path

from studio.urls import handler400, handler403, handler404, handler500, urlpatterns as real  # noqa: F401


def boom(request):
    raise RuntimeError("secret-internal-detail: SELECT * FROM auth_user")


urlpatterns = [path("boom/", boom), *real]
