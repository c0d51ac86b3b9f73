from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from evaluation.outbound import parse_allowlist
from evaluation.scoring import references_from_trajectory
from jobs import kinds
from training.export import register_reference_builder


class EvaluationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluation"

    def ready(self) -> None:

        checks.register(check_endpoint_allowlist)
        kinds.register("evaluation.evalrun", "evaluation.tasks.eval_run", runner="evaluation.runner")
        kinds.register("evaluation.judgerun", "evaluation.tasks.judge_run", restart=True)  # suggestions are kept once
        # Prompt snapshots (training.export) carry evaluation's gold references; training comes
        # first in the flow and imports nothing of evaluation, so evaluation hands its builder over.
        register_reference_builder(references_from_trajectory)


def check_endpoint_allowlist(app_configs=None, **kwargs):
    """``STUDIO_ENDPOINT_ALLOWLIST`` reads as an allowlist (a typo would otherwise refuse endpoints
    with no word about why)."""

    try:
        parse_allowlist(getattr(settings, "ENDPOINT_ALLOWLIST", ""))
    except ValueError as exc:
        return [checks.Error(f"STUDIO_ENDPOINT_ALLOWLIST: {exc}", id="evaluation.E001")]
    return []
