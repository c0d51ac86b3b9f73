from django.apps import AppConfig


class RlConfig(AppConfig):
    """Reinforcement learning with executable tools: GRPO jobs (rows of ``training.TrainingJob``,
    kind ``grpo``, run by ``python -m rl.runner``)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "rl"
    verbose_name = "Reinforcement learning"

    def ready(self) -> None:
        # Imported here: it imports models, which only exist once the apps are loaded.
        from rl import launch
        from training import job_kinds

        job_kinds.register("grpo", run_config=launch.run_config_for, command=launch.runner_command,
                           launch=launch.launch_from_dict)
