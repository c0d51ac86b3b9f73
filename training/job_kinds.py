"""Training job kinds that a later app adds (``rl`` adds ``grpo``): how the worker runs their rows.

``training.jobs.run_training_job`` runs SFT / DPO rows itself; a row of a registered kind gets its
job file and command from the kind's hooks (training never imports the app above it):

- ``run_config(job) -> JobFile``: the ``job.json`` its runner reads (written by the worker);
- ``command(cfg, job_file) -> list[str]``: the runner subprocess (``python -m rl.runner job.json``);
- ``launch(project=, snapshot=, base_model=, settings_data=, user=, name=, enqueue=) -> TrainingJob``:
  ``manage.py train --kind KIND`` (raises ``training.jobs.LaunchError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class TrainKind:
    run_config: Callable
    command: Callable
    launch: Callable


EXTRA_KINDS: dict[str, TrainKind] = {}


def register(kind: str, *, run_config: Callable, command: Callable, launch: Callable) -> None:
    """Make the worker run ``kind`` rows with these hooks (idempotent; an app's ``ready()``)."""
    EXTRA_KINDS[kind] = TrainKind(run_config=run_config, command=command, launch=launch)
