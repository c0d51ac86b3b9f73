from django import forms
from django.contrib import admin
from django.utils import timezone

from annotate.models import Project
from training import models
from training.roots import PathError, confined_template, confined_tokenizer


class ProjectAdminForm(forms.ModelForm):
    """The target template and tokenizer obey the same roots as every other user-given path.

    The project is annotate's, but its target fields are training's concern (training.roots), and
    annotate may not import training: so the project's admin is registered here.
    """

    class Meta:
        model = Project
        fields = "__all__"

    def clean_target_template(self):
        value = self.cleaned_data["target_template"].strip()
        try:
            return confined_template(value) if value else value
        except PathError as e:
            raise forms.ValidationError(e.message) from None

    def clean_target_tokenizer(self):
        value = self.cleaned_data["target_tokenizer"].strip()
        try:
            return confined_tokenizer(value) if value else value
        except PathError as e:
            raise forms.ValidationError(e.message) from None


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "slug", "target_template", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]


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
