from django.urls import path

from rl import api

urlpatterns = [
    path("projects/<slug:slug>/grpo-jobs/", api.GRPOLaunchAPI.as_view(), name="api-grpo-jobs"),
    path("projects/<slug:slug>/grpo-jobs/preview/", api.GRPOPreviewAPI.as_view(), name="api-grpo-preview"),
]
