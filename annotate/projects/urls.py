"""Pages for creating and managing projects, included from ``annotate/urls.py`` (``annotate`` namespace)."""

from django.urls import path

from annotate.projects import views

urlpatterns = [
    path("projects/new/", views.new_project, name="project-new"),
    path("p/<slug:slug>/settings/", views.project_settings, name="project-settings"),
    path("p/<slug:slug>/export/", views.export_trajectories, name="export-trajectories"),
]
