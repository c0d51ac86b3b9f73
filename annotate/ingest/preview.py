"""The preview step of an import: read a file, show what would be written, keep it until confirmed.

The summary itself is pure (:mod:`annotate.formats.summary`). Between the preview and the
confirmation the upload page keeps the files under ``DATA_DIR/imports/pending/<token>/``: the token
is random (``secrets``), checked against a strict pattern before it becomes a path, and bound to the
project and the user who uploaded, so one user cannot import another's stash, and no request can
name a path outside that folder. Stashes older than a day are removed when a new one is made.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from pathlib import Path

from django.conf import settings

from annotate.formats.summary import summarize
from annotate.ingest.reader import parse_file

_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,64}")
MAX_AGE_S = 24 * 3600
PARTS = ("file", "answers", "tools")


def preview(data: bytes, filename: str, *, fmt: str = "auto", skip_invalid: bool = False,
            answers: bytes | None = None, answers_filename: str = "", tools: bytes | None = None,
            tools_filename: str = "") -> dict:
    """The summary of what importing these bytes would write (nothing is written)."""
    result = parse_file(data, filename, fmt, settings.IMPORT_MAX_BYTES, skip_invalid, answers,
                        answers_filename=answers_filename, tools=tools, tools_filename=tools_filename)
    s = summarize(result)
    s["would_import"] = 0 if result.errors and not skip_invalid else len(result.trajectories)
    return s


def _root() -> Path:
    return (Path(settings.DATA_DIR) / "imports" / "pending").resolve()


def _folder(token: str) -> Path | None:
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    root = _root()
    folder = (root / token).resolve()
    return folder if folder.parent == root else None


def stash(project_id: int, user_id: int, files: dict[str, tuple[str, bytes]], options: dict) -> str:
    """Keep an upload's files (``{"file": (name, bytes), ...}``) and options; returns the token."""
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root)
    token = secrets.token_urlsafe(24)
    folder = root / token
    folder.mkdir(mode=0o700)
    names = {}
    for part, (name, data) in files.items():
        if part in PARTS:
            (folder / part).write_bytes(data)
            names[part] = name
    (folder / "stash.json").write_text(json.dumps({"project": project_id, "user": user_id, "names": names,
                                                   "options": options}))
    return token


def unstash(project_id: int, user_id: int, token: str) -> tuple[dict[str, tuple[str, bytes]], dict] | None:
    """The files and options kept under ``token`` for this project and user, or None."""
    folder = _folder(token)
    if folder is None or not (folder / "stash.json").is_file():
        return None
    info = json.loads((folder / "stash.json").read_text())
    if info.get("project") != project_id or info.get("user") != user_id:
        return None
    files = {part: (name, (folder / part).read_bytes()) for part, name in info["names"].items() if part in PARTS}
    return files, info.get("options", {})


def drop(token: str) -> None:
    folder = _folder(token)
    if folder is not None and folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


def _sweep(root: Path) -> None:
    cutoff = time.time() - MAX_AGE_S
    for folder in root.iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass
