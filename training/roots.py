"""Where user-given paths may point, and which model folders may run their own code.

Every chat template, tokenizer and model a user names by path (forms, the API, ``manage.py``
commands, and the worker again before it loads anything) resolves inside the **allowed roots**:

- the data dir's ``models/``, training ``runs/`` and ``snapshots/`` folders (never the data dir
  itself: it holds the secret key, the database and the broker's messages);
- the folders an admin lists in ``STUDIO_MODEL_ROOTS`` (colon-separated).

A path outside them is refused with one message whether it exists or not (``training.paths``).
Template family names (``qwen3``, ``qwen3_training`` ...), uploaded template text and hub ids
(``org/name``) are not paths and stay valid.

Remote code (``trust_remote_code``) runs only for a model folder an admin granted it to in the
admin (``TrustedModel``, checked by ``training.models.trust_remote_code_for``); there is no global switch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from django.conf import settings

from core.errors import InputError
from training.chat_templates import TemplateError, get_template
from training.paths import PathRefused, confine, is_path_like
from training.runner import model_reference_error


MAX_STORED_PATH = 1000  # TrainingJob.base_model and EvalRun.model_path


class PathError(InputError):
    """A user-given path that is refused; ``field`` names the form or API field."""


def allowed_roots() -> list[Path]:
    """The folders user-given template, tokenizer and model paths must lie in."""
    data = Path(settings.DATA_DIR)
    return [data / "models",
            Path(getattr(settings, "TRAINING_RUNS_DIR", data / "runs")),
            Path(getattr(settings, "SNAPSHOT_DIR", data / "snapshots")),
            *(Path(p) for p in getattr(settings, "MODEL_ROOTS", []))]


def confined_path(spec: str, field: str) -> str:
    """The real path of ``spec`` inside the allowed roots, or ``PathError`` naming ``field``."""
    try:
        return confine(spec, allowed_roots())
    except PathRefused as e:
        raise PathError(e.message, field) from None


def confined_template(spec: str, field: str = "template") -> str:
    """``spec`` as it should be stored: a registry name or template text unchanged, a path as its
    real path inside the allowed roots (``PathError`` otherwise, also when no template is there)."""
    try:
        get_template(spec, roots=allowed_roots())  # refuses a path outside the roots, or one with no template
    except (TemplateError, OSError, ValueError) as e:
        raise PathError(str(e), field) from None
    if "{%" in spec or "{{" in spec or not is_path_like(spec):
        return spec  # a registry name, or uploaded template text: stored as content
    return confined_path(spec, field)


def confined_tokenizer(spec: str, field: str = "tokenizer") -> str:
    return confined_path(spec, field)


def confined_export_settings(s):
    """``ExportSettings`` with its template and tokenizer confined (``PathError`` naming the field)."""
    return dataclasses.replace(s, template=confined_template(s.template), tokenizer=confined_tokenizer(s.tokenizer))


def model_error(model: str) -> str | None:
    """Why ``model`` (a local folder inside the allowed roots, or a hub id) cannot be used, or None."""
    if problem := model_reference_error(model, roots=allowed_roots()):
        return problem
    if len(confined_model(model)) > MAX_STORED_PATH:  # the real path, links followed, must fit its column
        return f"The path is too long: at most {MAX_STORED_PATH} characters once its links are followed."
    return None


def confined_model(model: str) -> str:
    """A checked model reference as stored: a hub id unchanged, a folder as its real path."""
    model = model.strip()
    return confine(model, allowed_roots()) if is_path_like(model) else model
