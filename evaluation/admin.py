from django.contrib import admin

from evaluation import models


@admin.register(models.EvalSet)
class EvalSetAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "source", "snapshot", "split", "item_count", "created_at"]
    list_filter = ["source", "project"]
    raw_id_fields = ["snapshot", "created_by"]


@admin.register(models.EvalSetItem)
class EvalSetItemAdmin(admin.ModelAdmin):
    list_display = ["eval_set", "position", "item_id", "trajectory"]
    raw_id_fields = ["eval_set", "trajectory"]


@admin.register(models.EvalRun)
class EvalRunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "status", "model_source", "done_items", "total_items", "created_at"]
    list_filter = ["status", "model_source", "project"]
    raw_id_fields = ["eval_set", "training_job", "created_by"]


@admin.register(models.EvalItemResult)
class EvalItemResultAdmin(admin.ModelAdmin):
    list_display = ["run", "position", "item_id", "decision", "gold_decision", "correct"]
    list_filter = ["correct", "decision"]
    raw_id_fields = ["run", "set_item", "sent_trajectory", "pair"]


@admin.register(models.AllowedEndpoint)
class AllowedEndpointAdmin(admin.ModelAdmin):
    list_display = ["pattern", "allow_private", "note", "added_by", "added_at"]
    list_filter = ["allow_private"]
    search_fields = ["pattern", "note"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.added_by = request.user
        super().save_model(request, obj, form, change)
