"""The kinds of job, as the apps register them (``AppConfig.ready``).

The machinery in ``jobs`` serves rows of models it does not know: a kind names its model, the
Celery task that runs a row (its name routes it to a queue), the module its runner subprocess
runs (so the sweep can recognise a runner left behind), and whether a row whose worker died is
started over (exports) or failed with the reason (training and evaluation runs).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class JobKind:
    model: str  # "app_label.modelname", as ``Model._meta.label_lower``
    task: str  # the Celery task's import path: "training.tasks.train_job"
    runner: str = ""  # the runner module its worker starts (its command line names it)
    restart: bool = False  # a row whose worker stopped is queued again (work safe to start over)
    route: str = ""  # import path of ``f(row) -> queue name`` when rows go to different queues

    def model_class(self):
        return apps.get_model(self.model)


KINDS: dict[str, JobKind] = {}


def register(model: str, task: str, *, runner: str = "", restart: bool = False, route: str = "") -> None:
    """Make the rows of ``model`` known to the queue and the sweep (idempotent)."""
    KINDS[model] = JobKind(model=model, task=task, runner=runner, restart=restart, route=route)


def kind_of(model) -> JobKind:
    try:
        return KINDS[model._meta.label_lower]
    except KeyError:
        raise LookupError(f"{model._meta.label} is not a registered kind of job (jobs.kinds.register)") from None


def task_of(model):
    """The Celery task that runs a row of ``model``."""
    return import_string(kind_of(model).task)


def router_of(model):
    """``f(row) -> queue name`` for a kind whose rows go to different queues, else None."""
    route = kind_of(model).route
    return import_string(route) if route else None
