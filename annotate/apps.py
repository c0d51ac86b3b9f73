from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "annotate"
    verbose_name = "Annotation"

    def ready(self):
        # DPO snapshots find the approved preference pairs through this selector.
        from annotate.pairs.services import register_with_snapshots

        register_with_snapshots()
