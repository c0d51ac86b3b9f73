from django.contrib import admin
from django.utils import timezone

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


@admin.register(models.TrustedModel)
class TrustedModelAdmin(admin.ModelAdmin):
    """Admins grant remote code per model folder; who granted it and when is recorded."""

    list_display = ["path", "granted_by", "granted_at", "note"]
    readonly_fields = ["granted_by", "granted_at"]
    fields = ["path", "note", "granted_by", "granted_at"]

    def save_model(self, request, obj, form, change):
        obj.granted_by, obj.granted_at = request.user, timezone.now()
        super().save_model(request, obj, form, change)
