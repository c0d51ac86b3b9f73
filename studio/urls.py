"""URLs. Pages need a login (LoginRequiredMiddleware); the API authenticates through DRF
(session or token) and is exempted from the middleware's redirect so clients get 401/403.
`/healthz` is answered by studio.middleware.healthz, before any of this."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from studio import errors


def api(patterns):
    """Exempt API views from the login redirect; DRF answers 401/403 itself."""
    for p in patterns:
        if hasattr(p, "url_patterns"):  # an include(): exempt what it includes
            api(p.url_patterns)
        elif getattr(p, "callback", None) is not None:
            p.callback = login_not_required(p.callback)
    return patterns


# Friendly error pages with the reason, a link back and the nav (studio.errors).
handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.page_not_found
handler500 = errors.server_error


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
