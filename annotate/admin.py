from django import forms
from django.contrib import admin

from annotate import models


class ProjectAdminForm(forms.ModelForm):
    """The target template and tokenizer obey the same roots as every other user-given path."""

    class Meta:
        model = models.Project
        fields = "__all__"

    def clean_target_template(self):
        from training.roots import PathError, confined_template

        value = self.cleaned_data["target_template"].strip()
        try:
            return confined_template(value) if value else value
        except PathError as e:
            raise forms.ValidationError(e.message) from None

    def clean_target_tokenizer(self):
        from training.roots import PathError, confined_tokenizer

        value = self.cleaned_data["target_tokenizer"].strip()
        try:
            return confined_tokenizer(value) if value else value
        except PathError as e:
            raise forms.ValidationError(e.message) from None


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "slug", "target_template", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]


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
