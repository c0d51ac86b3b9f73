from django.urls import path

from training import api
from training.rollouts import api as rollout_api

urlpatterns = [
    path("projects/<slug:slug>/training-jobs/", api.TrainingJobListAPI.as_view(), name="api-training-jobs"),
    path("projects/<slug:slug>/training-jobs/preview/", api.TrainingPreviewAPI.as_view(),
         name="api-training-preview"),
    path("training-jobs/<int:pk>/", api.TrainingJobDetailAPI.as_view(), name="api-training-job"),
    path("training-jobs/<int:pk>/metrics/", api.TrainingJobMetricsAPI.as_view(), name="api-training-metrics"),
    path("training-jobs/<int:pk>/cancel/", api.TrainingJobCancelAPI.as_view(), name="api-training-cancel"),
    path("training-jobs/<int:pk>/resume/", api.TrainingJobResumeAPI.as_view(), name="api-training-resume"),
    path("training-jobs/<int:pk>/rollouts/", rollout_api.RolloutListAPI.as_view(), name="api-training-rollouts"),
    path("training-jobs/<int:pk>/rollouts/pair/", rollout_api.RolloutPairAPI.as_view(),
         name="api-training-rollout-pair"),
]
