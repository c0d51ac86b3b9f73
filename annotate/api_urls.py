from django.urls import path

from annotate import api, pair_api_urls

urlpatterns = [
    path("projects/", api.ProjectListAPI.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", api.ProjectDetailAPI.as_view(), name="api-project"),
    path("projects/<slug:slug>/trajectories/", api.TrajectoryListAPI.as_view(), name="api-trajectories"),
    path("projects/<slug:slug>/import/", api.ImportAPI.as_view(), name="api-import"),
    path("trajectories/<int:pk>/", api.TrajectoryDocumentAPI.as_view(), name="api-trajectory"),
    *pair_api_urls.urlpatterns,  # preference pairs
]
