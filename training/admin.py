from django.contrib import admin

from training import models


@admin.register(models.Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "kind", "status", "item_count", "audit_errors", "content_hash", "created_at"]
    list_filter = ["kind", "status", "project"]


@admin.register(models.SnapshotItem)
class SnapshotItemAdmin(admin.ModelAdmin):
    list_display = ["snapshot", "trajectory", "revision"]
    raw_id_fields = ["snapshot", "trajectory", "revision"]


@admin.register(models.TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "status", "base_model", "current_step", "total_steps", "created_at"]
    list_filter = ["kind", "status", "project"]


@admin.register(models.MetricPoint)
class MetricPointAdmin(admin.ModelAdmin):
    list_display = ["job", "step", "epoch", "created_at"]
    raw_id_fields = ["job"]
