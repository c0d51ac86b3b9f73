from django.contrib import admin

from annotate import models


@admin.register(models.Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role"]
    list_filter = ["role", "project"]


@admin.register(models.Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ["name", "project"]
    list_filter = ["project"]
    search_fields = ["name"]


class TurnInline(admin.TabularInline):
    model = models.Turn
    extra = 0


@admin.register(models.Trajectory)
class TrajectoryAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "project", "status", "assignee", "version", "split", "updated_at"]
    list_filter = ["status", "split", "project"]
    search_fields = ["title", "external_id", "source"]
    raw_id_fields = ["assignee"]
    inlines = [TurnInline]


@admin.register(models.Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ["id", "trajectory", "turn_index", "position", "kind", "name", "train"]
    list_filter = ["kind", "train"]
    raw_id_fields = ["trajectory"]


@admin.register(models.StepLabel)
class StepLabelAdmin(admin.ModelAdmin):
    list_display = ["label", "step", "trajectory"]
    list_filter = ["label"]
    raw_id_fields = ["step", "trajectory"]


@admin.register(models.Revision)
class RevisionAdmin(admin.ModelAdmin):
    list_display = ["trajectory", "version", "author", "created_at", "summary"]
    raw_id_fields = ["trajectory"]


@admin.register(models.ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["filename", "project", "fmt", "imported", "skipped", "created_at"]
