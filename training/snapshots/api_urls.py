from django.urls import path

from training.snapshots import api as snapshot_api

urlpatterns = [
    path("projects/<slug:slug>/snapshots/", snapshot_api.SnapshotListAPI.as_view(), name="api-snapshots"),
    path("snapshots/<int:pk>/", snapshot_api.SnapshotDetailAPI.as_view(), name="api-snapshot"),
    path("snapshots/<int:pk>/override/", snapshot_api.SnapshotOverrideAPI.as_view(), name="api-snapshot-override"),
    path("snapshots/<int:pk>/cancel/", snapshot_api.SnapshotCancelAPI.as_view(), name="api-snapshot-cancel"),
    path("snapshots/<int:pk>/retry/", snapshot_api.SnapshotRetryAPI.as_view(), name="api-snapshot-retry"),
]
