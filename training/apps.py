from django.apps import AppConfig

from jobs import kinds


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"

    def ready(self) -> None:
        # Imported here, not at the top: it imports models, which only exist once the apps are loaded.
        from training import dpo_pairs

        dpo_pairs.register()  # the pairs app's DPO export and snapshot selector (annotate never imports training)
        # The rows the job machinery serves (jobs.queue, jobs.sweep): an export is safe to start over.
        kinds.register("training.snapshot", "training.snapshots.tasks.export_snapshot", restart=True)
        kinds.register("training.trainingjob", "training.tasks.train_job", runner="training.runner",
                       route="training.jobs.train_queue_of")  # by the GPUs a job asks for
