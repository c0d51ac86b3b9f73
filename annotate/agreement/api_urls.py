"""API routes for overlap and agreement, included from ``annotate/api_urls.py``."""

from django.urls import path

from annotate.agreement import api

urlpatterns = [
    path("projects/<slug:slug>/overlap/", api.OverlapAPI.as_view(), name="api-overlap"),
    path("projects/<slug:slug>/overlap/versions/", api.OverlapVersionsAPI.as_view(), name="api-overlap-versions"),
    path("projects/<slug:slug>/agreement/", api.AgreementAPI.as_view(), name="api-agreement"),
]
