"""Pages for preference pairs, included from ``annotate/urls.py`` (names live in the ``annotate`` namespace)."""

from django.urls import path

from annotate.pairs import views

urlpatterns = [
    path("p/<slug:slug>/pairs/", views.pair_list, name="pair-list"),
    path("p/<slug:slug>/pairs/dashboard/", views.pair_dashboard, name="pair-dashboard"),
    path("p/<slug:slug>/pairs/suggestions/", views.pair_suggestions, name="pair-suggestions"),
    path("p/<slug:slug>/pairs/import/", views.import_pairs, name="pair-import"),
    path("p/<slug:slug>/pairs/export/", views.export_pairs, name="pair-export"),
    path("p/<slug:slug>/pairs/categories/", views.add_pair_category, name="pair-category-add"),
    path("t/<int:pk>/fork/<int:turn>/<int:step>/", views.fork_pair, name="pair-fork"),
    path("pairs/<int:pk>/", views.pair_detail, name="pair-detail"),
    path("pairs/<int:pk>/edit/", views.edit_pair, name="pair-edit"),
    path("pairs/<int:pk>/review/", views.review_pair, name="pair-review"),
]
