from django.urls import path

from training import views
from training.rollouts import views as rollout_views
from training.snapshots import views as snapshot_views

app_name = "training"

urlpatterns = [
    path("p/<slug:slug>/runs/", views.run_list, name="run-list"),
    path("p/<slug:slug>/runs/new/", views.launch_job, name="launch-job"),
    path("runs/<int:pk>/", views.job_detail, name="job-detail"),
    path("runs/<int:pk>/cancel/", views.cancel_job, name="cancel-job"),
    path("runs/<int:pk>/resume/", views.resume_job, name="resume-job"),
    path("runs/<int:pk>/files/<str:name>", views.download_artifact, name="download-artifact"),
    # Snapshots and the render preview (training.snapshots.views).
    path("p/<slug:slug>/snapshots/", snapshot_views.snapshot_list, name="snapshot-list"),
    path("p/<slug:slug>/snapshots/new/", snapshot_views.new_snapshot, name="new-snapshot"),
    path("snapshots/<int:pk>/", snapshot_views.snapshot_detail, name="snapshot-detail"),
    path("snapshots/<int:pk>/override/", snapshot_views.override_snapshot, name="override-snapshot"),
    path("snapshots/<int:pk>/cancel/", snapshot_views.cancel_snapshot, name="cancel-snapshot"),
    path("snapshots/<int:pk>/retry/", snapshot_views.retry_snapshot, name="retry-snapshot"),
    path("snapshots/<int:pk>/files/<str:name>", snapshot_views.download_snapshot_file, name="snapshot-file"),
    path("t/<int:pk>/preview/", snapshot_views.preview_trajectory, name="preview"),
    path("runs/<int:pk>/rollouts/pair/", rollout_views.make_pair, name="rollout-pair"),
]
