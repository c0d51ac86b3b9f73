from django.apps import AppConfig


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"

    def ready(self):
        # Imported here, not at the top: it imports models, which only exist once the apps are loaded.
        from training import dpo_pairs

        dpo_pairs.register()  # the pairs app's DPO export and snapshot selector (annotate never imports training)
