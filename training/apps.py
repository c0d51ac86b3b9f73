from django.apps import AppConfig


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"

    def ready(self) -> None:
        from jobs import kinds

        # The rows the job machinery serves (jobs.queue, jobs.sweep): an export is safe to start over.
        kinds.register("training.snapshot", "training.snapshot_tasks.export_snapshot", restart=True)
        kinds.register("training.trainingjob", "training.tasks.train_job", runner="training.runner",
                       route="training.jobs.train_queue_of")  # by the GPUs a job asks for
