"""Which environment an item plays against: a small JSON spec, resolved in the episode's child (pure).

- ``{"kind": "python", "class": "package.module.Class"}``: a class an admin registered
  (``STUDIO_ENVIRONMENT_CLASSES``); its public methods are the tools.
- ``{"kind": "bfcl", "classes": ["GorillaFileSystem", "TwitterAPI"]}``: BFCL's multi-turn classes.
- ``{"kind": "replay"}``: a gold trajectory's recorded results.

The item's ``row`` is what ``reset(**row)`` receives (BFCL: ``initial_config``; replay: ``recorded``).

>>> environment_class({"kind": "replay"}).__name__
'ReplayEnvironment'
>>> environment_class({"kind": "python", "class": "os.Popen"}, allowed=[])
Traceback (most recent call last):
...
evaluation.environments.base.EnvironmentRefused: environment: 'os.Popen' is not a registered environment class; registered: none is registered (STUDIO_ENVIRONMENT_CLASSES)
"""

from __future__ import annotations

from typing import Any, Iterable

from evaluation.environments.base import EnvironmentRefused, load_class
from evaluation.environments.replay import ReplayEnvironment

KINDS = ("python", "bfcl", "replay")


def environment_class(spec: dict, allowed: Iterable[str] = ()) -> type:
    kind = spec.get("kind")
    if kind == "python":
        return load_class(str(spec.get("class") or ""), allowed)
    if kind == "bfcl":
        # Imported here, not at the top: every episode's child process imports this module, and
        # the BFCL loader (jsonschema through annotate.findings) doubled a python / replay child's
        # start (~50 of ~90 ms CPU), paid again for each of a GRPO step's processes.
        from evaluation.environments import bfcl

        try:
            return bfcl.environment_class(list(spec.get("classes") or []))
        except (ValueError, FileNotFoundError) as exc:
            raise EnvironmentRefused(str(exc), "environment") from None
    if kind == "replay":
        return ReplayEnvironment
    raise EnvironmentRefused(f"unknown environment kind {kind!r}; one of {', '.join(KINDS)}", "environment")


def state_instances(env: Any) -> dict[str, Any]:
    """The instances whose state is compared: a composite's parts, else the environment itself."""
    parts = getattr(env, "_state_instances", None)
    return parts() if parts is not None else {type(env).__name__: env}
