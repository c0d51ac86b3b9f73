"""API routes for preference pairs, included from ``annotate/api_urls.py`` (mounted at /api/).

The views are exempted from the login redirect here, since an ``include`` is not a view that
``studio.urls.api`` can mark: API clients get DRF's 401/403, not a redirect to the login page.
"""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from annotate.pairs import api


def _view(cls):
    return login_not_required(cls.as_view())


urlpatterns = [
    path("projects/<slug:slug>/pairs/", _view(api.PairListAPI), name="api-pairs"),
    path("projects/<slug:slug>/pairs/import/", _view(api.PairImportAPI), name="api-pair-import"),
    path("projects/<slug:slug>/pairs/export/", _view(api.PairExportAPI), name="api-pair-export"),
    path("projects/<slug:slug>/pairs/dashboard/", _view(api.PairDashboardAPI), name="api-pair-dashboard"),
    path("projects/<slug:slug>/pair-suggestions/", _view(api.SuggestionListAPI), name="api-pair-suggestions"),
    path("projects/<slug:slug>/pair-suggestions/decide/", _view(api.SuggestionDecideAPI),
         name="api-pair-suggestions-decide"),
    path("pairs/<int:pk>/", _view(api.PairDetailAPI), name="api-pair"),
    path("pairs/<int:pk>/review/", _view(api.PairReviewAPI), name="api-pair-review"),
]
