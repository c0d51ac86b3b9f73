"""BFCL's own code and data, from the ``bfcl-eval`` wheel, without installing it.

``bfcl-eval`` holds the reference checkers (``eval_checker``), the multi-turn tool classes
(``eval_checker/multi_turn_eval/func_source_code``) and the benchmark data. Its declared
dependencies are heavy and pin numpy 1.26, so it is never pip-installed into the app: the set-up
commands download the wheel with ``pip download --no-deps`` and unpack it into a folder; code that
needs BFCL puts that folder on ``sys.path`` (``importable()``) and stubs what BFCL imports only for
its model configs. Pure: no Django.

The folder is ``$STUDIO_BFCL_EVAL_DIR`` if set, else ``var/cache/bfcl_eval-<version>`` in the repo.
``python -m evaluation.bfcl_package`` fetches it (idempotent; `make setup` and `make test` run it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "2026.3.23"
ROOT = Path(__file__).resolve().parents[1]


def folder() -> Path:
    """Where the unpacked wheel lives (it has ``bfcl_eval/`` inside)."""
    configured = os.environ.get("STUDIO_BFCL_EVAL_DIR")
    return Path(configured) if configured else ROOT / "var" / "cache" / f"bfcl_eval-{VERSION}"


def available() -> bool:
    return (folder() / "bfcl_eval" / "eval_checker").is_dir()


def fetch(python: str = sys.executable) -> Path:
    """Download ``bfcl-eval==VERSION`` (no dependencies) and unpack it into ``folder()``."""
    target = folder()
    if available():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        f"bfcl-eval=={VERSION}", "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("bfcl_eval-*.whl"))
        partial = target.with_name(target.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(partial)
        partial.rename(target)
    return target


def data_file(name: str) -> Path:
    """A file of BFCL's data folder, e.g. ``data_file("BFCL_v4_multi_turn_base.json")``."""
    return folder() / "bfcl_eval" / "data" / name


def importable() -> Path:
    """Put the unpacked wheel on ``sys.path`` (once) so ``import bfcl_eval...`` finds it."""
    if not available():
        raise FileNotFoundError(f"bfcl-eval {VERSION} is not unpacked in {folder()}: run `python -m evaluation.bfcl_package`")
    path = str(folder())
    if path not in sys.path:
        sys.path.append(path)
    return folder()


if __name__ == "__main__":
    print(fetch())
