"""Set up Django on a fresh, throwaway data dir (SQLite, or DATABASE_URL where set) for a benchmark."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_dir(name: str) -> Path:
    """BENCH_DATA_DIR (kept, to measure again), or a new temporary folder."""
    return Path(os.environ.get("BENCH_DATA_DIR") or tempfile.mkdtemp(prefix=f"bench-{name}-"))


def setup(name: str, data: Path | None = None) -> Path:
    sys.path.insert(0, str(ROOT))
    data = data or data_dir(name)
    os.environ["STUDIO_DATA_DIR"] = str(data)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return data
