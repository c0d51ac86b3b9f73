from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluation"

    def ready(self) -> None:
        from django.core import checks

        from jobs import kinds

        checks.register(check_endpoint_allowlist)
        kinds.register("evaluation.evalrun", "evaluation.tasks.eval_run", runner="evaluation.runner")


def check_endpoint_allowlist(app_configs=None, **kwargs):
    """``STUDIO_ENDPOINT_ALLOWLIST`` reads as an allowlist (a typo would otherwise refuse endpoints
    with no word about why)."""
    from django.conf import settings
    from django.core import checks

    from evaluation.outbound import parse_allowlist

    try:
        parse_allowlist(getattr(settings, "ENDPOINT_ALLOWLIST", ""))
    except ValueError as exc:
        return [checks.Error(f"STUDIO_ENDPOINT_ALLOWLIST: {exc}", id="evaluation.E001")]
    return []
