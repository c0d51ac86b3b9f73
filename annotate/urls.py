from django.urls import include, path

from annotate import views

app_name = "annotate"

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("p/<slug:slug>/", views.project_detail, name="project-detail"),
    path("p/<slug:slug>/trajectories/", views.trajectory_list, name="trajectory-list"),
    path("p/<slug:slug>/import/", views.import_trajectories, name="import"),
    path("t/<int:pk>/", views.trajectory_detail, name="trajectory-detail"),
    path("", include("annotate.pair_urls")),  # preference pairs
]
