"""URLs. Pages need a login (LoginRequiredMiddleware); the API authenticates through DRF
(session or token) and is exempted from the middleware's redirect so clients get 401/403.
`/healthz` is answered by studio.middleware.healthz, before any of this."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.urls import include, path
from django.views.defaults import page_not_found
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


def api(patterns):
    """Exempt API views from the login redirect; DRF answers 401/403 itself."""
    for p in patterns:
        if hasattr(p, "url_patterns"):  # an include(): exempt what it includes
            api(p.url_patterns)
        elif getattr(p, "callback", None) is not None:
            p.callback = login_not_required(p.callback)
    return patterns


def not_found(request, exception):
    """A 404 under /api/ is JSON, as the schema documents (a URL no route matches: an id that is not a
    number, a slug with other characters); the pages keep Django's 404 page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found: no API route or row matches this URL."}, status=404)
    return page_not_found(request, exception)


handler404 = not_found


from annotate import api_urls as annotate_api  # noqa: E402
from training import api_urls as training_api  # noqa: E402
from training.snapshots import api_urls as snapshot_api_urls  # noqa: E402
from rl import api_urls as rl_api  # noqa: E402

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include(api(list(annotate_api.urlpatterns)))),
    path("api/", include(api(list(training_api.urlpatterns)))),
    path("api/", include(api(list(snapshot_api_urls.urlpatterns)))),
    path("api/", include(api(list(rl_api.urlpatterns)))),
    # Token clients read the schema too: DRF checks the login (SERVE_PERMISSIONS), not the redirect.
    path("api/schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("training/", include("training.urls")),
    path("rl/", include("rl.urls")),  # GRPO launch (the runs themselves live on training's pages)
    path("", include("evaluation.urls")),  # evaluation/… pages and api/… endpoints
    path("", include("annotate.urls")),
]
