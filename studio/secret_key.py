"""The secret key: generated once per data dir for the embedded default, required in production.

No Django imports: settings.py calls these before Django is set up.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

# Values copied from examples and old compose files: never a key, whatever else is set.
PLACEHOLDERS = frozenset({"", "change-me", "changeme", "change_me", "secret", "secret-key", "secret_key",
                          "django-insecure", "insecure", "dev", "development", "test", "default", "xxx"})
MIN_LENGTH = 50  # what `check --deploy` (security.W009) asks for
MIN_UNIQUE = 5


def embedded_key(path: Path) -> str:
    """The data dir's key, created on first use: random, and readable by its owner only (0600).

    Created complete or not at all (written to a private temporary file, then linked into place),
    so a web server and a worker starting together read the same key. A key file left readable
    by others by an older version is narrowed to 0600.
    """
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        try:
            path.chmod(0o600)
        except PermissionError:
            pass  # someone else's file: still readable by us, and not ours to change
    return path.read_text().strip()


def key_problem(key: str | None, *, required: bool) -> str | None:
    """Why ``key`` (the SECRET_KEY variable, None when unset) must not be used, or None.

    A placeholder is refused always; when ``required`` (the production shape with DEBUG off) a
    missing or weak key is refused too.

    >>> key_problem("change-me", required=False)
    'SECRET_KEY is a placeholder ("change-me")'
    >>> key_problem(None, required=False) is None
    True
    >>> key_problem(None, required=True)
    'SECRET_KEY is not set'
    """
    if key is None or key == "":
        return "SECRET_KEY is not set" if required else None
    if key.strip().lower() in PLACEHOLDERS or key.startswith("django-insecure-"):
        return f'SECRET_KEY is a placeholder ("{key}")'
    if required and (len(key) < MIN_LENGTH or len(set(key)) < MIN_UNIQUE):
        return f"SECRET_KEY is too weak (at least {MIN_LENGTH} characters, {MIN_UNIQUE} different ones)"
    return None
