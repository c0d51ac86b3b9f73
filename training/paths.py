"""Confining user-given paths to the folders an admin allows (pure; no Django).

A lead names chat templates, tokenizers and models by path. Each such path must resolve, with
every symlink followed (``os.path.realpath``), to somewhere inside one of the allowed roots; the
check is on text only, so the answer for a path outside the roots is the same whether it exists
or not (no oracle for what the server holds), and a symlink inside a root that points outside
is refused like the outside path itself.

>>> roots = ["/srv/models"]
>>> confine("/srv/models/qwen3", roots)
'/srv/models/qwen3'
>>> try:
...     confine("/srv/models/../secret", roots)
... except PathRefused as e:
...     e.message == REFUSED
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

# One message for a path outside the roots, missing or not, a symlink escape, and a malformed
# path: telling them apart would say what exists on the server.
REFUSED = ("not an allowed path: give a folder inside the data dir's models, runs or snapshots folders, "
           "or inside a model root the admin set (STUDIO_MODEL_ROOTS)")
# The longest name one path component may have on Linux filesystems, and the longest whole path.
NAME_MAX = 255
PATH_MAX = 4095


class PathRefused(ValueError):
    """A path outside the allowed roots, or one that cannot be a path at all."""

    def __init__(self, message: str = REFUSED):
        super().__init__(message)
        self.message = message


def length_error(spec: str) -> str | None:
    """Why ``spec`` is too long to be a path on this system, or None.

    >>> length_error("/models/" + "x" * 300)
    'the path is too long: a folder or file name may have at most 255 bytes'
    >>> length_error("/models/qwen3") is None
    True
    """
    if len(spec.encode("utf-8", "surrogatepass")) > PATH_MAX:
        return f"the path is too long: at most {PATH_MAX} bytes"
    if any(len(part.encode("utf-8", "surrogatepass")) > NAME_MAX for part in spec.split("/")):
        return f"the path is too long: a folder or file name may have at most {NAME_MAX} bytes"
    return None


def real_roots(roots: Iterable[str | os.PathLike]) -> list[str]:
    """The roots with their symlinks resolved (a root may itself be a link to the real folder)."""
    return [os.path.realpath(r) for r in roots if str(r)]


def is_inside(path: str, roots: Iterable[str | os.PathLike]) -> bool:
    """True when the real ``path`` is one of the real ``roots`` or below one."""
    return _within(os.path.realpath(path), roots)


def _within(real: str, roots: Iterable[str | os.PathLike]) -> bool:
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in real_roots(roots))


def confine(spec: str, roots: Iterable[str | os.PathLike]) -> str:
    """The real path of ``spec`` when it lies inside one of ``roots``; ``PathRefused`` otherwise.

    Relative paths count from the current folder, ``~`` is not expanded, and the message never
    depends on what exists outside the roots.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise PathRefused("give a path")
    spec = spec.strip()
    if problem := length_error(spec):
        raise PathRefused(problem)
    if "\0" in spec:
        raise PathRefused()
    real = os.path.realpath(spec)  # follows every symlink; never raises for a missing path
    if not _within(real, roots):
        raise PathRefused()
    if problem := length_error(real):  # links inside the roots made it longer than the system takes
        raise PathRefused(problem)
    return real


def is_path_like(spec: str) -> bool:
    """True when ``spec`` reads as a filesystem path rather than a hub id (``org/name``) or a name.

    >>> [is_path_like(s) for s in ("/srv/m", "./m", "../m", "~/m", "Qwen/Qwen3-0.6B", "qwen3")]
    [True, True, True, True, False, False]
    """
    s = spec.strip()
    return s.startswith(("/", ".", "~", "\\")) or Path(s).is_absolute()


def cli_path(value: str) -> str:
    """A command-line argument naming an existing relative path, made absolute (the operator's shell
    resolves relative paths; a worker runs elsewhere). Anything else is returned unchanged; the
    roots still apply to the result."""
    if value and not is_path_like(value) and ("/" in value or value.endswith(".jinja")) and os.path.exists(value):
        return os.path.abspath(value)
    return value
